"""Read-side queries behind GET /experiments and GET /experiments/{id}."""

from datetime import date

from peewee import JOIN, fn

from core.models import Allocation, Experiment, Variant
from core.settings import Settings
from scheduler.aggregate import aggregate_counts
from scheduler.posterior import beta_mean, credible_interval
from scheduler.thompson import Prior, experiment_seed, posterior, prob_best


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
            "created_at": r["created_at"],
            "variants": r["variants"],
            "latest_allocation_date": r["latest"],
        }
        for r in rows
    ]


def variant_stats(experiment_id: str, settings: Settings, today: date) -> list[dict]:
    totals = aggregate_counts(experiment_id)
    if not totals:
        return []
    arms = totals[0].arms
    prior = Prior(settings.sampling.prior_alpha, settings.sampling.prior_beta)
    alpha, beta = posterior([a.impressions for a in arms], [a.clicks for a in arms], prior)
    best = prob_best(alpha, beta, settings.sampling.samples, experiment_seed(experiment_id, today))
    return [
        {
            "variant_id": arm.variant_id,
            "impressions": arm.impressions,
            "clicks": arm.clicks,
            "posterior_mean": beta_mean(a, b),
            "credible_interval_95": credible_interval(a, b),
            "probability_best": float(p),
        }
        for arm, a, b, p in zip(arms, alpha, beta, best, strict=True)
    ]


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
        "allocations": [
            {"variant_id": r.variant.name, "percentage": r.percentage, "probability": r.probability}
            for r in rows
        ],
    }


def experiment_detail(experiment_id: str, settings: Settings, today: date) -> dict | None:
    experiment = Experiment.get_or_none(Experiment.name == experiment_id)
    if experiment is None:
        return None
    return {
        "experiment_id": experiment.name,
        "created_at": experiment.created_at,
        "variants": variant_stats(experiment_id, settings, today),
        "latest_allocation": latest_allocation(experiment),
    }
