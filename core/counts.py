"""Counts per (experiment, variant) in one SQL aggregation, as the policy counts them.

The nightly job (a chunk of experiments at a time, scheduler/aggregate.py) and the
experiment report read the same query. With `as_of` it also sums each day weighted by the
experiment's window or discount, one SQL expression for every experiment at once (each
experiment's window_days / discount comes from its settings row, else the config
default), and finds the experiment's first day of data.
"""

from dataclasses import dataclass, field
from datetime import date

from peewee import JOIN, Case, fn

from core.db import database, days_between
from core.schema import DailyMetric, Experiment, ExperimentPolicy, Variant
from core.settings import PolicySettings


def age_in_days(as_of: date):
    """Days from the metric's date to `as_of`; a day after `as_of` counts as age 0."""
    age = days_between(as_of, DailyMetric.date)
    return Case(None, [(age < 0, 0)], age)


def day_weight(as_of: date, defaults: PolicySettings):
    """1 for a counted day, 0 outside the window, discount^age when discounting."""
    window = fn.COALESCE(ExperimentPolicy.window_days, defaults.window_days)
    discount = fn.COALESCE(ExperimentPolicy.discount, defaults.discount)
    age = age_in_days(as_of)
    return Case(
        None,
        [
            (window > 0, Case(None, [(age < window, 1.0)], 0.0)),
            (discount < 1, fn.power(discount, age)),
        ],
        1.0,
    )


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
            # MIN of the one name of the group: standard SQL (PostgreSQL refuses a bare
            # column outside GROUP BY), and SQLite keeps grouping along the index.
            fn.MIN(Experiment.name).alias("name"),
            DailyMetric.variant,
            fn.MIN(Variant.name).alias("variant_name"),
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
    """Rows straight from the SQLite cursor: peewee would convert every value of every row
    in Python, a large share of the nightly aggregation, and these columns need none (keys
    are integers)."""
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
