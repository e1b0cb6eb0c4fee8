"""The experiment report behind GET /experiments and GET /experiments/{id}: totals, posterior,
P(best) and the winner rule computed the job's way (core.policy.decide_experiment, seeded by
the day the next run will publish for), the sample-ratio check and the value delivered,
each from the allocations routers were actually given."""

import dataclasses
import datetime as dt
from collections import defaultdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

from peewee import JOIN, fn

from core.beta import beta_mean, credible_interval
from core.counts import aggregate_counts
from core.db import as_utc
from core.experiments import find_experiment, load_state
from core.policy import decide_experiment, next_effective_date
from core.sampling import Prior, WinnerCheck, posterior
from core.schema import Allocation, DailyMetric, Experiment, Variant
from core.settings import PolicySettings, Settings
from core.splits import latest_split, publish_times, served_on
from core.srm import SRM_ALPHA, SrmResult, clicks_gained, sample_ratio


def list_experiments(limit: int, offset: int) -> list[dict]:
    latest = fn.MAX(Allocation.effective_date)
    rows = (
        Experiment.select(
            Experiment.name,
            Experiment.created_at,
            fn.COUNT(Variant.id.distinct()).alias("variants"),
            latest.alias("latest"),
        )
        .join(Variant, JOIN.LEFT_OUTER)
        .switch(Experiment)
        .join(Allocation, JOIN.LEFT_OUTER)
        .group_by(Experiment.id)
        .order_by(Experiment.name)
        .limit(limit)
        .offset(offset)
        .dicts()
    )
    return [
        {
            "experiment_id": r["name"],
            "created_at": as_utc(r["created_at"]),
            "variants": r["variants"],
            "latest_allocation_date": r["latest"],
        }
        for r in rows
    ]


def variant_stats(experiment: Experiment, settings: Settings, now: datetime) -> dict:
    """Per-arm totals and posterior as counted by the experiment's policy, and P(best) and
    the winner rule among the active arms, exactly as a run now would compute them."""
    effective_date = next_effective_date(now, settings.tz)
    state = load_state(experiment.id, settings.policy)
    totals = aggregate_counts(
        experiment.name, as_of=effective_date - dt.timedelta(days=1), defaults=settings.policy
    )
    arms = totals[0].arms if totals else []
    prior = Prior(settings.sampling.prior_alpha, settings.sampling.prior_beta)
    alpha, beta = posterior(
        [a.counted_impressions for a in arms], [a.counted_clicks for a in arms], prior
    )
    decision = (
        decide_experiment(totals[0], state, effective_date, settings.sampling) if arms else None
    )
    best_of = {}
    if decision is not None:
        best_of = {
            a.variant_pk: float(p)
            for a, p in zip(decision.arms, decision.split.probabilities, strict=True)
        }
    return {
        "variants": [
            arm_stats(arm, a, b, best_of.get(arm.variant_pk), arm.variant_pk not in best_of)
            for arm, a, b in zip(arms, alpha, beta, strict=True)
        ],
        "winner": winner_report(
            [a.variant_id for a in decision.arms] if decision else [],
            decision.split.winner if decision else None,
            state.policy,
        ),
        "means": {
            arm.variant_pk: beta_mean(a, b) for arm, a, b in zip(arms, alpha, beta, strict=True)
        },
        "state": state,
    }


def arm_stats(arm, alpha: float, beta: float, best: float | None, archived: bool) -> dict:
    return {
        "variant_id": arm.variant_id,
        "impressions": arm.impressions,
        "clicks": arm.clicks,
        "posterior_mean": beta_mean(alpha, beta),
        "credible_interval_95": credible_interval(alpha, beta),
        "probability_best": best,
        "archived": archived,
    }


def experiment_detail(experiment_id: str, settings: Settings, now: datetime) -> dict:
    experiment = find_experiment(experiment_id)
    stats = variant_stats(experiment, settings, now)
    served = list(days_served(experiment, settings.tz))  # read once for both reports
    return {
        "experiment_id": experiment.name,
        "created_at": as_utc(experiment.created_at),
        "archived": stats["state"].archived,
        "variants": stats["variants"],
        "latest_allocation": latest_split(experiment),
        "winner": stats["winner"],
        "sample_ratio": sample_ratio_report(served),
        "value_delivered": value_delivered(served, stats["means"]),
        "settings": dataclasses.asdict(stats["state"].policy),
    }


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


def days_served(experiment: Experiment, tz: ZoneInfo):
    """(day, {variant: impressions}, {variant: share}, ServedDay) for each day of data on
    which routers were served a published split (core.splits.served_on)."""
    splits, published = served_splits(experiment), publish_times(experiment)
    for day, observed in sorted(daily_impressions(experiment).items()):
        served = served_on(published, day, tz)
        if served is not None:
            yield day, observed, splits[served.split], served


def srm_day(day: date, result: SrmResult) -> dict:
    return {
        "date": day,
        "chi_square": result.chi_square,
        "p_value": result.p_value,
        "degrees_of_freedom": result.degrees_of_freedom,
        "flagged": result.flagged,
    }


def sample_ratio_report(served_days: list) -> dict:
    """Days on which the split changed (a recompute during the day, or the first split
    arriving) are not checked: their traffic follows a mix of splits."""
    days = []
    for day, observed, split, served in served_days:
        result = sample_ratio([observed.get(v, 0) for v in split], list(split.values()))
        if served.whole_day and result is not None:
            days.append(srm_day(day, result))
    flagged = [d for d in days if d["flagged"]]
    return {
        "threshold": SRM_ALPHA,
        "checked_days": len(days),
        "suspect": bool(flagged),
        "flagged_days": flagged,
        "latest": days[-1] if days else None,
    }


def value_delivered(served_days: list, means: dict[int, float]) -> dict:
    """Clicks gained over an equal split: sum over days of the sum over arms of (impressions
    the arm was served - the day's impressions / K) times its posterior mean as of now.
    Counted from what was served, not from the planned shares, so a router that ignored
    the split gains nothing; over days begun under a published split (before the first,
    routers get an equal split)."""
    gained, days = 0.0, 0
    for _, observed, split, served in served_days:
        arms = [v for v in split if v in means]
        if len(arms) < 2 or not served.from_start:
            continue
        gained += clicks_gained([observed.get(v, 0) for v in arms], [means[v] for v in arms])
        days += 1
    return {"clicks_gained": gained, "days": days}
