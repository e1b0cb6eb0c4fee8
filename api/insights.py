"""What GET /experiments/{id} reports beyond totals: the winner rule, the sample-ratio
check and the value delivered, each from the allocations routers were actually given."""

from bisect import bisect_right
from collections import defaultdict
from datetime import date

from core.models import Allocation, DailyMetric, Experiment
from core.settings import PolicySettings
from scheduler.srm import SRM_ALPHA, clicks_gained, sample_ratio
from scheduler.winner import WinnerCheck


def winner_report(names: list[str], check: WinnerCheck | None, policy: PolicySettings) -> dict:
    base = {
        "winner_probability": policy.winner_probability,
        "value_remaining_threshold": policy.value_remaining,
    }
    if check is None:
        return {
            **base,
            "declared": False,
            "variant_id": None,
            "leader": None,
            "probability_best": None,
            "value_remaining": None,
        }
    return {
        **base,
        "declared": check.declared,
        "variant_id": names[check.leader] if check.declared else None,
        "leader": names[check.leader],
        "probability_best": check.probability,
        "value_remaining": check.value_remaining,
    }


def by_day(rows) -> dict[date, dict[int, float]]:
    """{day: {variant pk: value}} from (day, variant pk, value) rows."""
    days: dict[date, dict] = defaultdict(dict)
    for day, variant_pk, value in rows:
        days[day][variant_pk] = value
    return dict(days)


def served_splits(experiment: Experiment) -> dict[date, dict[int, float]]:
    """Effective date -> {variant pk: share of traffic} for every stored allocation."""
    return by_day(
        Allocation.select(
            Allocation.effective_date, Allocation.variant, Allocation.percentage / 100
        )
        .where(Allocation.experiment == experiment)
        .tuples()
    )


def daily_impressions(experiment: Experiment) -> dict[date, dict[int, int]]:
    return by_day(
        DailyMetric.select(DailyMetric.date, DailyMetric.variant, DailyMetric.impressions)
        .where(DailyMetric.experiment == experiment)
        .tuples()
    )


def days_with_split(experiment: Experiment):
    """(day, {variant: impressions}, split in force that day) for each day of data that
    had a published allocation: the latest one whose effective date is on or before it."""
    splits = served_splits(experiment)
    starts = sorted(splits)
    for day, observed in sorted(daily_impressions(experiment).items()):
        index = bisect_right(starts, day)
        if index:
            yield day, observed, splits[starts[index - 1]]


def sample_ratio_report(experiment: Experiment) -> dict:
    checked, flagged, latest = 0, [], None
    for day, observed, split in days_with_split(experiment):
        result = sample_ratio([observed.get(v, 0) for v in split], list(split.values()))
        if result is None:
            continue
        checked += 1
        latest = {
            "date": day,
            "chi_square": result.chi_square,
            "p_value": result.p_value,
            "degrees_of_freedom": result.degrees_of_freedom,
            "flagged": result.flagged,
        }
        if result.flagged:
            flagged.append(latest)
    return {
        "threshold": SRM_ALPHA,
        "checked_days": checked,
        "suspect": bool(flagged),
        "flagged_days": flagged,
        "latest": latest,
    }


def value_delivered(experiment: Experiment, means: dict[int, float]) -> dict:
    """Clicks gained over an equal split: sum over days of impressions times sum over arms
    of (served share - 1/K) times the arm's posterior mean as of now."""
    gained, days = 0.0, 0
    for _, observed, split in days_with_split(experiment):
        arms = [v for v in split if v in means]
        if len(arms) < 2:
            continue
        total = sum(observed.get(v, 0) for v in arms)
        gained += clicks_gained(total, [split[v] for v in arms], [means[v] for v in arms])
        days += 1
    return {"clicks_gained": gained, "days": days}
