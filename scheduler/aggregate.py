"""One SQL aggregation for every experiment: cumulative counts per (experiment, variant)."""

from dataclasses import dataclass, field

from peewee import fn

from core.models import DailyMetric, Experiment, Variant


@dataclass(frozen=True)
class ArmTotals:
    variant_pk: int
    variant_id: str
    impressions: int
    clicks: int


@dataclass
class ExperimentTotals:
    experiment_pk: int
    experiment_id: str
    arms: list[ArmTotals] = field(default_factory=list)


def totals_query(experiment_id: str | None = None):
    query = (
        DailyMetric.select(
            DailyMetric.experiment,
            Experiment.name,
            DailyMetric.variant,
            Variant.name.alias("variant_name"),
            fn.SUM(DailyMetric.impressions).alias("impressions"),
            fn.SUM(DailyMetric.clicks).alias("clicks"),
        )
        .join(Experiment)
        .switch(DailyMetric)
        .join(Variant)
        .group_by(DailyMetric.experiment, DailyMetric.variant)
        .order_by(DailyMetric.experiment, DailyMetric.variant)
    )
    if experiment_id is not None:
        query = query.where(Experiment.name == experiment_id)
    return query


def aggregate_counts(experiment_id: str | None = None) -> list[ExperimentTotals]:
    """Totals per experiment, arms in the order they joined."""
    experiments: list[ExperimentTotals] = []
    for exp_pk, exp_name, var_pk, var_name, imps, clicks in totals_query(experiment_id).tuples():
        if not experiments or experiments[-1].experiment_pk != exp_pk:
            experiments.append(ExperimentTotals(exp_pk, exp_name))
        experiments[-1].arms.append(ArmTotals(var_pk, var_name, int(imps), int(clicks)))
    return experiments
