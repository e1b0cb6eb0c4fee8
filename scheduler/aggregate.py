"""One SQL aggregation for every experiment: cumulative counts per (experiment, variant).

With `as_of` the same query also sums each day weighted by the experiment's window or
discount (scheduler/weighting.py) and finds the experiment's first day of data.
"""

from dataclasses import dataclass, field
from datetime import date

from peewee import JOIN, fn

from core.db import database
from core.models import DailyMetric, Experiment, Variant
from core.policy_models import ExperimentPolicy
from core.settings import PolicySettings
from scheduler.weighting import day_weight


@dataclass(frozen=True)
class ArmTotals:
    variant_pk: int
    variant_id: str
    impressions: int
    clicks: int
    # Weighted by window or discount when aggregated with `as_of`; else equal to the totals.
    counted_impressions: float = 0.0
    counted_clicks: float = 0.0
    first_date: date | None = None


@dataclass
class ExperimentTotals:
    experiment_pk: int
    experiment_id: str
    arms: list[ArmTotals] = field(default_factory=list)


def totals_query(
    experiment_id: str | None = None,
    as_of: date | None = None,
    defaults: PolicySettings | None = None,
):
    weight = 1 if as_of is None else day_weight(as_of, defaults or PolicySettings())
    query = (
        DailyMetric.select(
            DailyMetric.experiment,
            Experiment.name,
            DailyMetric.variant,
            Variant.name.alias("variant_name"),
            fn.SUM(DailyMetric.impressions).alias("impressions"),
            fn.SUM(DailyMetric.clicks).alias("clicks"),
            fn.SUM(DailyMetric.impressions * weight).alias("counted_impressions"),
            fn.SUM(DailyMetric.clicks * weight).alias("counted_clicks"),
            fn.MIN(DailyMetric.date).alias("first_date"),
        )
        .join(Experiment)
        .switch(DailyMetric)
        .join(Variant)
        .switch(DailyMetric)
        .join(
            ExperimentPolicy,
            JOIN.LEFT_OUTER,
            on=(ExperimentPolicy.experiment == DailyMetric.experiment),
        )
        .group_by(DailyMetric.experiment, DailyMetric.variant)
        .order_by(DailyMetric.experiment, DailyMetric.variant)
    )
    if experiment_id is not None:
        query = query.where(Experiment.name == experiment_id)
    return query


def grouped(query) -> list[ExperimentTotals]:
    """Rows straight from the SQLite cursor: peewee's row conversion would double the time
    of the nightly aggregation, and these columns need none (keys are integers)."""
    experiments: list[ExperimentTotals] = []
    for exp_pk, exp_name, var_pk, var_name, *counts in database.execute(query):
        if not experiments or experiments[-1].experiment_pk != exp_pk:
            experiments.append(ExperimentTotals(exp_pk, exp_name))
        experiments[-1].arms.append(arm_totals(var_pk, var_name, *counts))
    return experiments


def arm_totals(var_pk, var_name, imps, clicks, counted_imps, counted_clicks, first) -> ArmTotals:
    first = date.fromisoformat(first) if isinstance(first, str) else first
    return ArmTotals(
        var_pk, var_name, int(imps), int(clicks), float(counted_imps), float(counted_clicks), first
    )


def aggregate_counts(
    experiment_id: str | None = None,
    as_of: date | None = None,
    defaults: PolicySettings | None = None,
) -> list[ExperimentTotals]:
    """Totals per experiment, arms in the order they joined."""
    return grouped(totals_query(experiment_id, as_of, defaults))


def totals_in_chunks(
    experiment_id: str | None = None,
    size: int = 1000,
    as_of: date | None = None,
    defaults: PolicySettings | None = None,
):
    """The same totals as aggregate_counts, for up to `size` experiment keys per query.

    Short queries by key range keep memory flat and never hold a read snapshot open for
    the length of a run (a long reader stops WAL checkpoints while writers go on).
    """
    if experiment_id is not None:
        yield aggregate_counts(experiment_id, as_of, defaults)
        return
    last = DailyMetric.select(fn.MAX(DailyMetric.experiment)).scalar() or 0
    for low in range(0, last, size):
        in_range = DailyMetric.experiment.between(low + 1, low + size)
        chunk = grouped(totals_query(None, as_of, defaults).where(in_range))
        if chunk:
            yield chunk
