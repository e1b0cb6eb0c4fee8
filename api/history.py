"""Allocation history: the split in force on a day, and an experiment's whole series.

These read the database (unlike GET /allocation without a date, which is served from memory).
"""

from datetime import date
from itertools import groupby

from peewee import JOIN, fn

from api.cache import computed_body
from api.reasons import reason_fields, reason_on
from core.models import Allocation, Experiment, Run, Variant
from core.policy_models import AllocationReason


def day_in_force(experiment: Experiment, day: date) -> date | None:
    """The latest effective date at or before `day`: what routers were served that day."""
    return (
        Allocation.select(fn.MAX(Allocation.effective_date))
        .where((Allocation.experiment == experiment) & (Allocation.effective_date <= day))
        .scalar()
    )


def allocation_rows(experiment: Experiment, day: date | None = None) -> list:
    query = (
        Allocation.select(Allocation, Variant, Run)
        .join(Variant)
        .switch(Allocation)
        .join(Run, JOIN.LEFT_OUTER)
        .where(Allocation.experiment == experiment)
        .order_by(Allocation.effective_date, Allocation.variant)
    )
    if day is not None:
        query = query.where(Allocation.effective_date == day)
    return list(query)


def allocation_on(experiment: Experiment, day: date) -> bytes | None:
    """The GET /allocation body that was in force on `day`, or None before the first run."""
    in_force = day_in_force(experiment, day)
    if in_force is None:
        return None
    rows = allocation_rows(experiment, in_force)
    return computed_body(experiment.name, rows, reason_on(experiment.id, in_force))


def allocation_series(experiment: Experiment) -> list[dict]:
    """Every stored day, oldest first: percentages, probabilities, reason, run."""
    reasons = {
        r.effective_date: r
        for r in AllocationReason.select().where(AllocationReason.experiment == experiment)
    }
    return [
        series_item(day, list(rows), reasons.get(day))
        for day, rows in groupby(allocation_rows(experiment), key=lambda r: r.effective_date)
    ]


def series_item(day: date, rows: list, reason) -> dict:
    run = rows[0].run
    return {
        "date": day,
        "run_id": rows[0].run_id,
        "trigger": run.trigger if run else None,
        **reason_fields(reason),
        "allocations": [
            {"variant_id": r.variant.name, "percentage": r.percentage, "probability": r.probability}
            for r in rows
        ],
    }
