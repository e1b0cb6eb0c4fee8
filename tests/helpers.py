"""Constants and helpers shared by the test modules (fixtures live in conftest.py).

A test module imports from here, tests/processes.py or tests/reference.py, never from
another test module: tests/test_layout.py checks it.
"""

from datetime import UTC, date, datetime
from pathlib import Path

from core.db import database
from core.db.postgres import LOCK_CLASS, SCOPES
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


# Another process's connection to the test's database, outside the app's pool: sqlite3 on
# the file, or psycopg on the PostgreSQL URL (tests name an engine only here and in
# conftest and tests/postgres.py).


class Other:
    """An autocommit DB-API connection to the same database, with `?` placeholders on both
    engines, and the two ways another writer holds things up: all writes (SQLite's one
    lock, PostgreSQL's global advisory lock and table locks), or the global lock only."""

    def __init__(self, settings, timeout_s: float = 10.0):
        self.postgres = settings.database.url.startswith("postgresql://")
        if self.postgres:
            import psycopg

            self.conn = psycopg.connect(settings.database.url, autocommit=True)
            # 0 would mean no limit on PostgreSQL: "no waiting" is the shortest wait.
            self.execute(f"SET lock_timeout = {max(1, int(timeout_s * 1000))}")
        else:
            import sqlite3

            self.conn = sqlite3.connect(
                settings.database.path, timeout=timeout_s, isolation_level=None
            )

    def execute(self, sql: str, params=()) -> list:
        if self.postgres:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def begin_writes_blocked(self) -> None:
        """Hold what every writer waits on: SQLite's write lock; on PostgreSQL the global
        advisory lock and the metric and experiment tables against writes."""
        if self.postgres:
            self.execute("BEGIN")
            self.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, SCOPES["global"]))
            self.execute("LOCK TABLE experiment, variant, daily_metric IN EXCLUSIVE MODE")
        else:
            self.execute("BEGIN IMMEDIATE")

    def write_experiment(self, name: str) -> None:
        """What a POST creating an experiment does, in a transaction of its own."""
        self.execute("BEGIN" if self.postgres else "BEGIN IMMEDIATE")
        self.execute(
            "INSERT INTO experiment (name, created_at, version) VALUES (?, '2025-12-22', 0)",
            (name,),
        )
        self.execute("COMMIT")

    def take_global_lock(self) -> None:
        """PostgreSQL: what a settings change, a publish or a run's start waits on."""
        self.execute("BEGIN")
        self.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, SCOPES["global"]))

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
