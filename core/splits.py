"""Published splits: the latest per experiment, the one in force on a day, an experiment's
series, and the GET /allocation body bytes, encoded here once for every reader.

One allocation row becomes one `{"variant_id", "percentage", "probability"}` item, and a
day's rows with their reason become one body, in one place for the cache, the history and
the experiment report.
"""

import json
from collections import defaultdict
from datetime import date
from itertools import groupby

from peewee import JOIN, chunked, fn

from core.db import read_transaction, utc_text
from core.policy import NOT_COMPUTED, NOT_COMPUTED_TEXT, THOMPSON_TEXT, equal_split
from core.schema import Allocation, AllocationReason, ArchivedVariant, Experiment, Run, Variant

LOAD_BATCH = 500  # experiments per query when loading bodies
# Splits published before reasons were stored were all plain Thompson Sampling.
LEGACY_REASON = {"reason": "thompson", "explanation": THOMPSON_TEXT}
NOT_COMPUTED_REASON = {"reason": NOT_COMPUTED, "explanation": NOT_COMPUTED_TEXT}


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def reason_fields(row: AllocationReason | None) -> dict:
    if row is None:
        return dict(LEGACY_REASON)
    return {"reason": row.reason, "explanation": row.explanation}


def allocation_items(rows: list) -> list[dict]:
    return [
        {"variant_id": r.variant.name, "percentage": r.percentage, "probability": r.probability}
        for r in rows
    ]


def computed_at(first: Allocation) -> str:
    moment = first.run.finished_at if first.run and first.run.finished_at else first.created_at
    return utc_text(moment)


def computed_body(name: str, rows: list, reason=None) -> bytes:
    first = rows[0]
    return dumps(
        {
            "experiment_id": name,
            "date": first.effective_date.isoformat(),
            "status": "computed",
            "allocations": allocation_items(rows),
            "computed_at": computed_at(first),
            "run_id": first.run_id,
            **reason_fields(reason),
        }
    )


def placeholder_body(name: str, variants: list[str]) -> bytes:
    return dumps(
        {
            "experiment_id": name,
            "date": None,
            "status": "not_computed",
            "allocations": [
                {"variant_id": v, "percentage": pct, "probability": None}
                for v, pct in zip(variants, equal_split(len(variants)), strict=True)
            ],
            "computed_at": None,
            "run_id": None,
            **NOT_COMPUTED_REASON,
        }
    )


def latest_days(model, experiment_pks: list[int]):
    """A subquery: each experiment's latest effective date in `model`'s table."""
    return (
        model.select(model.experiment, fn.MAX(model.effective_date).alias("day"))
        .where(model.experiment.in_(experiment_pks))
        .group_by(model.experiment)
        .alias("latest")
    )


def allocation_rows():
    """Allocation rows with their variant and run, in split order."""
    return (
        Allocation.select(Allocation, Variant, Run)
        .join(Variant)
        .switch(Allocation)
        .join(Run, JOIN.LEFT_OUTER)
        .order_by(Allocation.experiment, Allocation.effective_date, Allocation.variant)
    )


def latest_allocations(experiment_pks: list[int]) -> dict[int, list]:
    latest = latest_days(Allocation, experiment_pks)
    rows = allocation_rows().join_from(
        Allocation,
        latest,
        on=(
            (Allocation.experiment == latest.c.experiment_id)
            & (Allocation.effective_date == latest.c.day)
        ),
    )
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.experiment_id].append(row)
    return grouped


def latest_reasons(experiment_pks: list[int]) -> dict[int, AllocationReason]:
    """Each experiment's reason on its latest day, keyed by experiment primary key."""
    latest = latest_days(AllocationReason, experiment_pks)
    rows = AllocationReason.select().join(
        latest,
        on=(
            (AllocationReason.experiment == latest.c.experiment_id)
            & (AllocationReason.effective_date == latest.c.day)
        ),
    )
    return {row.experiment_id: row for row in rows}


def active_variant_names(experiment_pks: list[int]) -> dict[int, list[str]]:
    rows = (
        Variant.select(Variant.experiment, Variant.name)
        .where(Variant.experiment.in_(experiment_pks))
        .where(Variant.id.not_in(ArchivedVariant.select(ArchivedVariant.variant)))
        .order_by(Variant.experiment, Variant.id)
        .tuples()
    )
    grouped = defaultdict(list)
    for exp_pk, name in rows:
        grouped[exp_pk].append(name)
    return grouped


def bodies_of(changed: list[tuple]) -> dict[str, bytes]:
    """The served body of each (pk, name, version): its latest split, else the equal split
    of its active arms (an experiment with neither has none)."""
    pks = [pk for pk, _, _ in changed]
    allocations, names, reasons = (
        latest_allocations(pks),
        active_variant_names(pks),
        latest_reasons(pks),
    )
    bodies = {}
    for pk, name, _ in changed:
        if allocations.get(pk):
            bodies[name] = computed_body(name, allocations[pk], reasons.get(pk))
        elif names.get(pk):
            bodies[name] = placeholder_body(name, names[pk])
    return bodies


def bodies_since(version: int) -> tuple[dict[str, bytes], int]:
    """The bodies of every experiment whose version moved past `version`, and the newest
    version among them, from one consistent snapshot."""
    with read_transaction():
        changed = list(
            Experiment.select(Experiment.id, Experiment.name, Experiment.version)
            .where(Experiment.version > version)
            .order_by(Experiment.version)
            .tuples()
        )
        bodies = {}
        for batch in chunked(changed, LOAD_BATCH):
            bodies.update(bodies_of(batch))
    return bodies, (changed[-1][2] if changed else version)


def reason_on(experiment_pk: int, day) -> AllocationReason | None:
    return AllocationReason.get_or_none(
        (AllocationReason.experiment == experiment_pk) & (AllocationReason.effective_date == day)
    )


def day_in_force(experiment: Experiment, day: date) -> date | None:
    """The latest effective date at or before `day`: what routers were served that day."""
    return (
        Allocation.select(fn.MAX(Allocation.effective_date))
        .where((Allocation.experiment == experiment) & (Allocation.effective_date <= day))
        .scalar()
    )


def rows_on(experiment: Experiment, day: date) -> list:
    return list(
        allocation_rows().where(
            (Allocation.experiment == experiment) & (Allocation.effective_date == day)
        )
    )


def allocation_on(experiment: Experiment, day: date) -> bytes | None:
    """The GET /allocation body that was in force on `day`, or None before the first run."""
    in_force = day_in_force(experiment, day)
    if in_force is None:
        return None
    rows = rows_on(experiment, in_force)
    return computed_body(experiment.name, rows, reason_on(experiment.id, in_force))


def latest_split(experiment: Experiment) -> dict | None:
    """The experiment's latest published day: date, run, reason and allocations."""
    rows = latest_allocations([experiment.id]).get(experiment.id)
    if not rows:
        return None
    day = rows[0].effective_date
    return {
        "date": day,
        "run_id": rows[0].run_id,
        **reason_fields(reason_on(experiment.id, day)),
        "allocations": allocation_items(rows),
    }


def allocation_series(experiment: Experiment) -> list[dict]:
    """Every stored day, oldest first: percentages, probabilities, reason, run."""
    reasons = {
        r.effective_date: r
        for r in AllocationReason.select().where(AllocationReason.experiment == experiment)
    }
    rows = allocation_rows().where(Allocation.experiment == experiment)
    return [
        series_item(day, list(day_rows), reasons.get(day))
        for day, day_rows in groupby(rows, key=lambda r: r.effective_date)
    ]


def series_item(day: date, rows: list, reason) -> dict:
    run = rows[0].run
    return {
        "date": day,
        "run_id": rows[0].run_id,
        "trigger": run.trigger if run else None,
        **reason_fields(reason),
        "allocations": allocation_items(rows),
    }
