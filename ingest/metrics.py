"""Upsert daily metrics: one row per (experiment, date, variant); a repost replaces it."""

from dataclasses import dataclass, field
from datetime import date

from peewee import EXCLUDED

from core.db import write_transaction
from core.models import DailyMetric, Experiment, Variant, utcnow
from core.serving import mark_changed

UPSERT_BATCH = 300  # rows per INSERT; 5 columns each stays far below SQLite's variable limit


@dataclass
class StoreResult:
    rows: int = 0
    new_experiments: list[str] = field(default_factory=list)
    new_variants: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class MetricRow:
    experiment_id: str
    date: date
    variant_id: str
    impressions: int
    clicks: int


def rows_of(batch) -> list[MetricRow]:
    """Flatten a validated DailyMetrics into rows."""
    return [
        MetricRow(batch.experiment_id, batch.date, v.variant_id, v.impressions, v.clicks)
        for v in batch.variants
    ]


class MetricWriter:
    """Resolves experiment and variant ids once per load and upserts rows in batches."""

    def __init__(self):
        self.experiment_ids: dict[str, int] = {}
        self.variant_ids: dict[tuple[str, str], int] = {}
        self.result = StoreResult()

    def experiment_id(self, name: str) -> int:
        # Select-then-insert is race free: we hold the write lock (BEGIN IMMEDIATE).
        if name not in self.experiment_ids:
            row = Experiment.get_or_none(Experiment.name == name)
            if row is None:
                row = Experiment.create(name=name)
                self.result.new_experiments.append(name)
            self.experiment_ids[name] = row.id
        return self.experiment_ids[name]

    def variant_id(self, experiment: str, name: str) -> int:
        key = (experiment, name)
        if key not in self.variant_ids:
            exp_id = self.experiment_id(experiment)
            row = Variant.get_or_none((Variant.experiment == exp_id) & (Variant.name == name))
            if row is None:
                row = Variant.create(experiment=exp_id, name=name)
                self.result.new_variants.append(key)
            self.variant_ids[key] = row.id
        return self.variant_ids[key]

    def upsert(self, rows: list[MetricRow]) -> None:
        now = utcnow()
        values = [
            (
                self.experiment_id(r.experiment_id),
                self.variant_id(r.experiment_id, r.variant_id),
                r.date,
                r.impressions,
                r.clicks,
                now,
            )
            for r in rows
        ]
        for start in range(0, len(values), UPSERT_BATCH):
            upsert_values(values[start : start + UPSERT_BATCH])
        self.result.rows += len(rows)

    def mark_new_for_serving(self) -> None:
        """New experiments and variants change what GET /allocation serves (equal split)."""
        changed = {self.experiment_ids[e] for e in self.result.new_experiments}
        changed |= {self.experiment_ids[e] for e, _ in self.result.new_variants}
        mark_changed(sorted(changed))


def upsert_values(values: list[tuple]) -> None:
    fields = [
        DailyMetric.experiment,
        DailyMetric.variant,
        DailyMetric.date,
        DailyMetric.impressions,
        DailyMetric.clicks,
        DailyMetric.updated_at,
    ]
    (
        DailyMetric.insert_many(values, fields=fields)
        .on_conflict(
            conflict_target=[DailyMetric.experiment, DailyMetric.date, DailyMetric.variant],
            update={
                DailyMetric.impressions: EXCLUDED.impressions,
                DailyMetric.clicks: EXCLUDED.clicks,
                DailyMetric.updated_at: EXCLUDED.updated_at,
            },
        )
        .execute()
    )


def store_rows(rows: list[MetricRow]) -> StoreResult:
    """Upsert all rows in one transaction: either every row lands or none does."""
    writer = MetricWriter()
    with write_transaction():
        writer.upsert(rows)
        writer.mark_new_for_serving()
    return writer.result
