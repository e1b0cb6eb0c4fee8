"""`python -m core backup PATH`: a whole, checked copy, even while writes go on."""

import os
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path

import pytest

from core.backup import BackupError, backup_database
from core.db import database
from ingest.metrics import MetricRow, store_rows
from tests.helpers import ROOT


def write_day(day: int) -> None:
    """One transaction: two variants for one day, so a torn copy would show one alone."""
    when = date(2025, 1, 1) + timedelta(days=day)
    store_rows(
        [MetricRow("bk", when, "a", 100 + day, day), MetricRow("bk", when, "b", 200 + day, day)]
    )


def days_in(path: Path) -> dict[int, int]:
    """Rows per day number in a copy, read with plain sqlite3 as an operator would."""
    with closing(sqlite3.connect(path)) as copy:
        rows = copy.execute("SELECT date, COUNT(*) FROM daily_metric GROUP BY date").fetchall()
    start = date(2025, 1, 1)
    return {(date.fromisoformat(d) - start).days: n for d, n in rows}


def test_sqlite_backup_copies_every_committed_row_into_a_single_checked_file(
    db, settings, tmp_path
):
    for day in range(5):
        write_day(day)
    target = backup_database(Path(settings.database.path), tmp_path / "copy.db")
    assert set(days_in(target).values()) == {2} and len(days_in(target)) == 5
    with closing(sqlite3.connect(target)) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (tmp_path / "copy.db.partial").exists()


def test_sqlite_backup_refuses_to_overwrite(db, settings, tmp_path):
    target = tmp_path / "copy.db"
    target.write_text("precious")
    with pytest.raises(BackupError, match="exists"):
        backup_database(Path(settings.database.path), target)
    assert target.read_text() == "precious"


def test_backup_of_a_missing_database_fails(tmp_path):
    with pytest.raises(BackupError, match="no database"):
        backup_database(tmp_path / "none.db", tmp_path / "copy.db")


def test_backup_command_reports_failure_with_exit_code(settings, tmp_path):
    env = {**os.environ, "BANDIT_DATABASE_PATH": str(tmp_path / "none.db")}
    result = subprocess.run(
        [sys.executable, "-m", "core", "backup", str(tmp_path / "copy.db")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "backup failed" in result.stderr


@pytest.mark.processes
def test_sqlite_backup_while_writes_go_on_holds_only_whole_transactions(db, settings, tmp_path):
    write_day(0)
    stop = threading.Event()
    written = []

    def writer():
        with database.connection_context():
            for day in range(1, 5000):
                if stop.is_set():
                    return
                write_day(day)
                written.append(day)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        env = {**os.environ, "BANDIT_DATABASE_PATH": settings.database.path}
        result = subprocess.run(
            [sys.executable, "-m", "core", "backup", str(tmp_path / "copy.db")],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert result.returncode == 0, result.stderr
    counts = days_in(tmp_path / "copy.db")
    assert set(counts.values()) == {2}, "a transaction was copied in part"
    # Writes are sequential, so one instant's snapshot is a prefix of them: no gaps.
    assert sorted(counts) == list(range(len(counts)))
    assert len(counts) <= len(written) + 1
    assert written, "the writer never ran alongside the backup"
