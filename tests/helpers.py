"""Constants and helpers shared by the test modules (fixtures live in conftest.py).

A test module imports from here, tests/processes.py or tests/reference.py, never from
another test module: tests/test_layout.py checks it.
"""

from datetime import UTC, date, datetime
from pathlib import Path

from core.db import database
from core.schema import Allocation, DailyMetric, Experiment, Variant
from ingest.metrics import MetricRow, store_rows
from scheduler.job import run_job

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key-0123456789"

CONTRACT_POST = {
    "experiment_id": "ctr_test",
    "date": "2025-12-22",
    "variants": [
        {"variant_id": "control", "impressions": 1000, "clicks": 50},
        {"variant_id": "variant", "impressions": 1000, "clicks": 70},
    ],
}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# The nightly fire time on 2025-12-22 (UTC): a run at NOW publishes for 2025-12-23.
NOW = utc(2025, 12, 22, 23, 50)


def load(*rows) -> None:
    """Store (experiment, date, variant, impressions, clicks) tuples as POST /data would."""
    store_rows([MetricRow(*row) for row in rows])


def load_contract() -> None:
    """CONTRACT_POST's counts, stored without the app."""
    day = date.fromisoformat(CONTRACT_POST["date"])
    load(
        *[
            (CONTRACT_POST["experiment_id"], day, v["variant_id"], v["impressions"], v["clicks"])
            for v in CONTRACT_POST["variants"]
        ]
    )


def allocations(experiment="ctr_test") -> list[tuple]:
    """(variant, percentage, P(best), effective date) of every stored allocation."""
    rows = (
        Allocation.select(
            Variant.name, Allocation.percentage, Allocation.probability, Allocation.effective_date
        )
        .join(Variant)
        .join_from(Allocation, Experiment)
        .where(Experiment.name == experiment)
        .order_by(Allocation.effective_date, Allocation.variant)
        .tuples()
    )
    return [(v, pct, p, str(d)) for v, pct, p, d in rows]


def stored_counts(experiment="ctr_test") -> list[tuple]:
    """(date, variant, impressions, clicks) as stored, on a connection of its own."""
    with database.connection_context():
        rows = (
            DailyMetric.select(
                DailyMetric.date, Variant.name, DailyMetric.impressions, DailyMetric.clicks
            )
            .join(Variant)
            .join_from(DailyMetric, Experiment)
            .where(Experiment.name == experiment)
            .order_by(DailyMetric.date, Variant.id)
            .tuples()
        )
        return [(str(d), v, i, c) for d, v, i, c in rows]


def row_count() -> tuple[int, int, int]:
    """(metric rows, experiments, variants): (0, 0, 0) means nothing was stored."""
    with database.connection_context():
        return DailyMetric.select().count(), Experiment.select().count(), Variant.select().count()


def variant(**overrides) -> dict:
    """One variant of a POST /data body."""
    return {"variant_id": "control", "impressions": 100, "clicks": 5, **overrides}


def body(**overrides) -> dict:
    """A valid POST /data body, with the given fields replaced."""
    return {
        "experiment_id": "ctr_test",
        "date": "2025-12-22",
        "variants": [variant(), variant(variant_id="b")],
        **overrides,
    }


def run_at(now: datetime, settings, trigger: str = "nightly", **kwargs):
    """run_job at `now` (a nightly by default): every row it writes is stamped from it."""
    return run_job(now, settings, trigger, **kwargs)
