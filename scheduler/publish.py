"""Store a run's allocations in one transaction and tell web processes they changed."""

from dataclasses import dataclass
from datetime import date

from core import testhooks
from core.db import bound, execute_many, write_transaction
from core.models import Allocation
from core.policy_models import AllocationReason
from core.serving import mark_changed
from scheduler.batches import batched

DELETE_BATCH = 500  # experiments per DELETE ... IN (...)


@dataclass(frozen=True)
class ArmAllocation:
    variant_pk: int
    variant_id: str
    probability: float
    percentage: float


@dataclass(frozen=True)
class ExperimentAllocation:
    experiment_pk: int
    experiment_id: str
    seed: int
    arms: list[ArmAllocation]
    reason: str = "thompson"
    explanation: str = ""


def allocation_rows(run_id: int, effective_date: date | str, results) -> list[tuple]:
    return [
        (
            r.experiment_pk,
            arm.variant_pk,
            effective_date,
            arm.percentage,
            arm.probability,
            r.seed,
            run_id,
        )
        for r in results
        for arm in r.arms
    ]


def publish_allocations(run_id: int, effective_date: date, results, before_commit=None) -> None:
    """Replace each experiment's allocation for the day; all or nothing.

    `results` may be a stream (read back from a spill file): it is written a batch at a
    time, all inside one write transaction. before_commit() runs last inside it (the job
    records the run's success there, so the split and its run's status commit together).
    """
    fields = [
        Allocation.experiment,
        Allocation.variant,
        Allocation.effective_date,
        Allocation.percentage,
        Allocation.probability,
        Allocation.seed,
        Allocation.run,
    ]
    ids, day = [], bound(effective_date)  # bound once, not per row
    with write_transaction():
        for batch in batched(results, DELETE_BATCH):
            batch_ids = [r.experiment_pk for r in batch]
            (
                Allocation.delete()
                .where(
                    Allocation.experiment.in_(batch_ids)
                    & (Allocation.effective_date == effective_date)
                )
                .execute()
            )
            rows = allocation_rows(run_id, day, batch)
            execute_many(Allocation.insert_many(rows[:1], fields=fields), rows)
            publish_reasons(run_id, effective_date, batch)
            ids += batch_ids
        mark_changed(ids)
        testhooks.pause("publish")
        if before_commit is not None:
            before_commit()


def publish_reasons(run_id: int, effective_date: date, results) -> None:
    """Replace each experiment's reason for the day; call inside the publish transaction."""
    rows = [(r.experiment_pk, effective_date, run_id, r.reason, r.explanation) for r in results]
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        (
            AllocationReason.delete()
            .where(
                AllocationReason.experiment.in_([row[0] for row in chunk])
                & (AllocationReason.effective_date == effective_date)
            )
            .execute()
        )
        fields = [
            AllocationReason.experiment,
            AllocationReason.effective_date,
            AllocationReason.run,
            AllocationReason.reason,
            AllocationReason.explanation,
        ]
        execute_many(AllocationReason.insert_many(chunk[:1], fields=fields), chunk)
