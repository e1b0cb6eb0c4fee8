"""The reason stored with each split, for the bodies GET /allocation serves."""

from peewee import fn

from core.policy_models import AllocationReason
from scheduler.policy import THOMPSON_TEXT

# Splits published before reasons were stored were all plain Thompson Sampling.
LEGACY_REASON = {"reason": "thompson", "explanation": THOMPSON_TEXT}
NOT_COMPUTED_REASON = {
    "reason": "not_computed",
    "explanation": "No run has computed this experiment yet: equal split.",
}


def reason_fields(row: AllocationReason | None) -> dict:
    if row is None:
        return dict(LEGACY_REASON)
    return {"reason": row.reason, "explanation": row.explanation}


def latest_reasons(experiment_pks: list[int]) -> dict[int, dict]:
    """Each experiment's reason on its latest day, keyed by experiment primary key."""
    latest = (
        AllocationReason.select(
            AllocationReason.experiment, fn.MAX(AllocationReason.effective_date).alias("day")
        )
        .where(AllocationReason.experiment.in_(experiment_pks))
        .group_by(AllocationReason.experiment)
        .alias("latest")
    )
    rows = AllocationReason.select().join(
        latest,
        on=(
            (AllocationReason.experiment == latest.c.experiment_id)
            & (AllocationReason.effective_date == latest.c.day)
        ),
    )
    return {row.experiment_id: row for row in rows}


def reason_on(experiment_pk: int, day) -> AllocationReason | None:
    return AllocationReason.get_or_none(
        (AllocationReason.experiment == experiment_pk) & (AllocationReason.effective_date == day)
    )
