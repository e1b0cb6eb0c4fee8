"""Published splits: the latest per experiment, the one routers were served on a day, an
experiment's series, and the GET /allocation body bytes (the cache loads them in bulk with
core/served.py, which writes the same bytes).

A split is served from the moment it is published (its run's end) until a later effective
date is published, not from its effective date: a manual recompute writes tomorrow's split
and routers get it at once.

One allocation row becomes one `{"variant_id", "percentage", "probability"}` item, and a
day's rows with their reason become one body, in one place for the cache, the history and
the experiment report.
"""

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

from peewee import JOIN, fn

from core.db import as_utc, utc_text
from core.policy import NOT_COMPUTED, NOT_COMPUTED_TEXT, THOMPSON_TEXT, equal_split
from core.schema import Allocation, AllocationReason, Experiment, Run, Variant

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


def published_at(first: Allocation) -> datetime:
    """When a day's split was published: its run's end (the run's success and its split
    commit together), else, for rows without one, when they were written."""
    return first.run.finished_at if first.run and first.run.finished_at else first.created_at


def computed_at(first: Allocation) -> str:
    return utc_text(published_at(first))


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


def reason_on(experiment_pk: int, day) -> AllocationReason | None:
    return AllocationReason.get_or_none(
        (AllocationReason.experiment == experiment_pk) & (AllocationReason.effective_date == day)
    )


def publish_times(experiment: Experiment) -> dict[date, datetime]:
    """Effective date -> when its split was published, and so served from (naive UTC)."""
    rows = (
        Allocation.select(Allocation.effective_date, Run.finished_at, Allocation.created_at)
        .join(Run, JOIN.LEFT_OUTER)
        .where(Allocation.experiment == experiment)
        .distinct()
        .tuples()
    )
    return {day: finished or created for day, finished, created in rows}


def in_force_at(published: dict[date, datetime], moment: datetime) -> date | None:
    """The split routers got at `moment`: the latest effective date published by then,
    as the cache serves an experiment's latest day (a manual recompute, for tomorrow, is
    served at once)."""
    return max((day for day, at in published.items() if at <= moment), default=None)


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight as naive UTC, the way times are stored."""
    return datetime.combine(day, time(), tz).astimezone(UTC).replace(tzinfo=None)


# The nightly publishes the next day's split a little before midnight (23:50 by default):
# a split still in force this far into the day counts as the day's whole split.
MOSTLY = 0.95


@dataclass(frozen=True)
class ServedDay:
    split: date  # the effective date of the split routers got
    from_start: bool  # in force when the day began (else first published during it)
    whole_day: bool  # it alone was served from the day's start until at least MOSTLY of it


def served_on(published: dict[date, datetime], day: date, tz: ZoneInfo) -> ServedDay | None:
    """The split in force when local `day` began, else the first one published during it;
    None when routers got no published split that day."""
    start, end = (day_start(d, tz) for d in (day, day + timedelta(days=1)))
    at_start = in_force_at(published, start)
    mostly = start + (end - start) * MOSTLY
    at_mostly = max((d for d, at in published.items() if at < mostly), default=None)
    if at_start is not None:
        return ServedDay(at_start, True, at_start == at_mostly)
    during = sorted((at, d) for d, at in published.items() if start <= at < end)
    return ServedDay(during[0][1], False, False) if during else None


def rows_on(experiment: Experiment, day: date) -> list:
    return list(
        allocation_rows().where(
            (Allocation.experiment == experiment) & (Allocation.effective_date == day)
        )
    )


def allocation_on(experiment: Experiment, day: date, tz: ZoneInfo) -> bytes | None:
    """The GET /allocation body routers were served on `day` (see served_on)."""
    served = served_on(publish_times(experiment), day, tz)
    if served is None:
        return None
    rows = rows_on(experiment, served.split)
    return computed_body(experiment.name, rows, reason_on(experiment.id, served.split))


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
        "served_from": as_utc(published_at(rows[0])),
        **reason_fields(reason),
        "allocations": allocation_items(rows),
    }
