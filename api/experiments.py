"""Read-side queries behind GET /experiments and GET /experiments/{id}."""

import dataclasses
from datetime import UTC, date, datetime

from peewee import JOIN, fn

from api.insights import sample_ratio_report, value_delivered, winner_report
from api.reasons import reason_fields, reason_on
from core.models import Allocation, Experiment, Variant
from core.settings import Settings
from scheduler.aggregate import aggregate_counts
from scheduler.policy import probabilities_of
from scheduler.policy_store import load_state
from scheduler.posterior import beta_mean, credible_interval
from scheduler.thompson import Prior, experiment_seed, posterior
from scheduler.winner import check_winner, posterior_draws


def as_utc(moment: datetime) -> datetime:
    """Stored times are naive UTC; the API says so (RFC 3339 needs the offset)."""
    return moment.replace(tzinfo=UTC)


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


def variant_stats(experiment: Experiment, settings: Settings, today: date) -> dict:
    """Per-arm totals and posterior as counted by the experiment's policy, P(best) among
    the active arms, and the winner rule on the same draws."""
    state = load_state(experiment.id, settings.policy)
    totals = aggregate_counts(experiment.name, as_of=today, defaults=settings.policy)
    arms = totals[0].arms if totals else []
    prior = Prior(settings.sampling.prior_alpha, settings.sampling.prior_beta)
    alpha, beta = posterior(
        [a.counted_impressions for a in arms], [a.counted_clicks for a in arms], prior
    )
    active = [i for i, a in enumerate(arms) if a.variant_pk not in state.archived_variants]
    seed = experiment_seed(experiment.name, today)
    best, check = assess(alpha[active], beta[active], state.policy, settings.sampling, seed)
    best_of = dict(zip(active, best, strict=True))
    return {
        "variants": [
            arm_stats(arm, a, b, best_of.get(i), i not in best_of)
            for i, (arm, a, b) in enumerate(zip(arms, alpha, beta, strict=True))
        ],
        "winner": winner_report([arms[i].variant_id for i in active], check, state.policy),
        "means": {
            arm.variant_pk: beta_mean(a, b) for arm, a, b in zip(arms, alpha, beta, strict=True)
        },
        "state": state,
    }


def assess(alpha, beta, policy, sampling, seed: int):
    """P(best) per arm (by the policy's method) and the winner check; nothing for no arms."""
    if len(alpha) == 0:
        return [], None
    draws = posterior_draws(alpha, beta, sampling.samples, seed)
    probabilities = probabilities_of(alpha, beta, draws, policy.method)
    check = check_winner(draws, probabilities, policy.winner_probability, policy.value_remaining)
    return [float(p) for p in probabilities], check


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


def latest_allocation(experiment: Experiment) -> dict | None:
    day = (
        Allocation.select(fn.MAX(Allocation.effective_date))
        .where(Allocation.experiment == experiment)
        .scalar()
    )
    if day is None:
        return None
    rows = (
        Allocation.select(Allocation, Variant)
        .join(Variant)
        .where((Allocation.experiment == experiment) & (Allocation.effective_date == day))
        .order_by(Allocation.variant)
    )
    rows = list(rows)
    return {
        "date": day,
        "run_id": rows[0].run_id,
        **reason_fields(reason_on(experiment.id, day)),
        "allocations": [
            {"variant_id": r.variant.name, "percentage": r.percentage, "probability": r.probability}
            for r in rows
        ],
    }


def experiment_detail(experiment_id: str, settings: Settings, today: date) -> dict | None:
    experiment = Experiment.get_or_none(Experiment.name == experiment_id)
    if experiment is None:
        return None
    stats = variant_stats(experiment, settings, today)
    return {
        "experiment_id": experiment.name,
        "created_at": as_utc(experiment.created_at),
        "archived": stats["state"].archived,
        "variants": stats["variants"],
        "latest_allocation": latest_allocation(experiment),
        "winner": stats["winner"],
        "sample_ratio": sample_ratio_report(experiment),
        "value_delivered": value_delivered(experiment, stats["means"]),
        "settings": dataclasses.asdict(stats["state"].policy),
    }
