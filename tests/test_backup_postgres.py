"""`python -m core backup PATH` on PostgreSQL: a pg_dump archive that pg_restore brings back.

The database is a clone of the migrated template with rows posted through the service's own
code; the archive is restored into a new empty database of the same cluster, and the rows
read back there with plain psycopg, as an operator restoring it would.
"""

import os
import subprocess
import sys
from datetime import date, timedelta

import psycopg
import pytest

from core.db.postgres import server_tool
from ingest.metrics import MetricRow, store_rows
from tests.helpers import ROOT


def rows_of(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT e.name, m.date::text, v.name, m.impressions, m.clicks FROM daily_metric m"
            " JOIN experiment e ON e.id = m.experiment_id JOIN variant v ON v.id = m.variant_id"
            " ORDER BY 1, 2, 3"
        ).fetchall()


@pytest.fixture
def restored(postgres_cluster):
    """The url of a new empty database of the cluster, dropped after the test."""
    postgres_cluster.execute("CREATE DATABASE restored_copy")
    url = postgres_cluster.url("restored_copy")
    yield url
    postgres_cluster.drop(url)


def test_postgres_backup_command_restores_into_an_empty_database(
    db, database_env, restored, tmp_path
):
    first = date(2025, 1, 1)
    rows = [
        MetricRow(f"bk{e}", first + timedelta(days=d), arm, 100 + d, d + e)
        for e in range(3)
        for d in range(4)
        for arm in ("a", "b")
    ]
    store_rows(rows)
    target = tmp_path / "bandit.dump"
    done = subprocess.run(
        [sys.executable, "-m", "core", "backup", str(target)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert target.stat().st_size > 0 and not target.with_name("bandit.dump.partial").exists()

    restore = [server_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={restored}"]
    done = subprocess.run([*restore, str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = sorted((r.experiment_id, r.date.isoformat(), r.variant_id, r.impressions, r.clicks)
                      for r in rows)  # fmt: skip
    assert rows_of(restored) == expected == rows_of(database_env.database.url)
    with psycopg.connect(restored) as conn:  # the schema came along: the service can open it
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    assert version >= 7


def test_postgres_backup_command_refuses_to_overwrite(db, database_env, tmp_path):
    target = tmp_path / "bandit.dump"
    target.write_text("precious")
    done = subprocess.run(
        [sys.executable, "-m", "core", "backup", str(target)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "exists" in done.stderr
    assert target.read_text() == "precious"
