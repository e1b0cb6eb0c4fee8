"""The splits routers were served, for core.series: every stored split as plain tuples
(core.splits.allocation_series builds a model per row, most of a year-long page's time),
with its fields, and the one served on each day (core.splits.served_on)."""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from peewee import JOIN

from core.db import as_utc
from core.schema import Allocation, AllocationReason, Experiment, Run, Variant
from core.splits import LEGACY_REASON, ServedDay, served_on


@dataclass(frozen=True)
class SplitDay:
    date: date  # the split's effective date
    run_id: int
    trigger: str | None
    reason: str
    explanation: str
    served_from: datetime
    from_start: bool
    whole_day: bool


def split_history(experiment: Experiment, published: dict) -> list[dict]:
    """Every stored split, oldest first, with the fields of core.splits.allocation_series."""
    reasons = {
        day: {"run_id": run, "reason": reason, "explanation": text}
        for day, run, reason, text in AllocationReason.select(
            AllocationReason.effective_date,
            AllocationReason.run,
            AllocationReason.reason,
            AllocationReason.explanation,
        )
        .where(AllocationReason.experiment == experiment)
        .tuples()
    }
    rows = (
        Allocation.select(
            Allocation.effective_date,
            Allocation.run,
            Variant.name,
            Allocation.percentage,
            Run.trigger,
        )
        .join(Variant)
        .switch(Allocation)
        .join(Run, JOIN.LEFT_OUTER)
        .where(Allocation.experiment == experiment)
        .order_by(Allocation.effective_date, Allocation.variant)
        .tuples()
    )
    history: dict[date, dict] = {}
    for day, run, name, percentage, trigger in rows:
        if day not in history:
            history[day] = {
                "date": day,
                "run_id": run,
                "trigger": trigger,
                "served_from": as_utc(published[day]),
                **LEGACY_REASON,
                **{k: v for k, v in reasons.get(day, {}).items() if k != "run_id"},
                "allocations": [],
            }
        history[day]["allocations"].append({"variant_id": name, "percentage": percentage})
    return list(history.values())


def served_splits(history: list, published: dict, days: list[date], tz: ZoneInfo) -> dict:
    """{day: (SplitDay, {variant id: share})} for each day routers got a published split."""
    by_date = {item["date"]: item for item in history}
    found = {}
    for day in days:
        served = served_on(published, day, tz)
        if served is not None:
            found[day] = split_of(by_date[served.split], served)
    return found


def split_of(item: dict, served: ServedDay) -> tuple[SplitDay, dict[str, float]]:
    split = SplitDay(
        item["date"],
        item["run_id"],
        item["trigger"],
        item["reason"],
        item["explanation"],
        item["served_from"],
        served.from_start,
        served.whole_day,
    )
    return split, {a["variant_id"]: a["percentage"] / 100 for a in item["allocations"]}
