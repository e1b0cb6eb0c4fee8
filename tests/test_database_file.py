"""The database file is pinned at start: moved, deleted, emptied, replaced or corrupt, it is
refused with a message naming the cause, never answered with a new empty database."""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import date, timedelta

import pytest

from core.db import DatabaseFault, database, write_transaction
from core.migrations import open_database
from tests.helpers import NOW, ROOT, body, load, run_at
from tests.processes import child_env, query


def day_post(day: int) -> dict:
    return body(date=f"2025-11-{day + 1:02d}")


def stored_rows(path) -> int:
    return query(path, "SELECT count(*) FROM daily_metric")[0][0]


def start_web(tmp_path, path=None, **settings):
    """(exit status, output) of `python -m api` on the database at path, when it stops."""
    env = child_env(path or tmp_path / "bandit.db", BANDIT_SERVER_PORT=free_port(), **settings)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "api"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("python -m api started on a database it should have refused")
    return done.returncode, done.stdout + done.stderr


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def filled(path, days: int = 40):
    """A database at path with two arms of 20 experiments for `days` days, by the app's code."""
    done = subprocess.run(
        [sys.executable, "-c", FILL.format(days=days)],
        cwd=ROOT,
        env=child_env(path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return path


FILL = """
from datetime import date, timedelta
from core.migrations import open_database
from core.settings import load_settings
from ingest.metrics import MetricRow, store_rows
open_database(load_settings().database)
rows = [MetricRow(f"e{{e}}", date(2025, 1, 1) + timedelta(days=d), v, 100, 5)
        for e in range(20) for d in range({days}) for v in ("a", "b")]
store_rows(rows)
"""


@pytest.mark.processes
@pytest.mark.parametrize("how", ["move", "delete"])
def test_a_sqlite_file_moved_or_deleted_under_a_running_web_is_a_503_never_a_new_file(
    tmp_path, procs, how
):
    path, moved = tmp_path / "bandit.db", tmp_path / "bandit.db.moved"
    server = procs.server(child_env(path))
    for day in range(20):
        assert server.request("POST", "/data", day_post(day))[0] == 200
    path.rename(moved) if how == "move" else path.unlink()
    status, answer = server.request("POST", "/data", day_post(25))
    assert status == 503
    assert answer["error"] == "storage"
    assert "is missing: it was moved or deleted while in use" in answer["message"]
    status, health = server.request("GET", "/healthz")
    assert status == 503
    assert "is missing: it was moved or deleted" in health["database"]
    assert not path.exists()  # no new empty database took the writes
    server.signal(signal.SIGTERM)
    server.wait()
    assert not path.exists()
    if how == "move":  # every acknowledged row is in the moved file, the refused one is not
        assert stored_rows(moved) == 40
    status, output = start_web(tmp_path)  # a restart does not start over either
    assert status != 0
    assert f"database file {path} is missing but {path}-wal is there" in output
    assert not path.exists()


@pytest.mark.processes
def test_a_sqlite_file_replaced_under_a_running_web_is_a_503_naming_it(tmp_path, procs):
    path = tmp_path / "bandit.db"
    server = procs.server(child_env(path))
    assert server.request("POST", "/data", day_post(0))[0] == 200
    other = filled(tmp_path / "other.db", days=1)
    os.replace(other, path)
    status, answer = server.request("POST", "/data", day_post(1))
    assert status == 503
    assert "was replaced by another file" in answer["message"]
    assert stored_rows(path) == 40  # the new file's rows, untouched by the refused POST


@pytest.mark.processes
def test_a_sqlite_file_truncated_to_zero_bytes_is_refused_at_start(tmp_path):
    path = tmp_path / "bandit.db"
    path.write_bytes(b"")
    status, output = start_web(tmp_path)
    assert status != 0
    assert f"database file {path} is empty (0 bytes)" in output
    assert path.stat().st_size == 0


@pytest.mark.processes
def test_garbage_in_the_middle_of_the_sqlite_file_is_refused_at_start(tmp_path):
    path = filled(tmp_path / "bandit.db")
    pages = path.stat().st_size // 4096
    with open(path, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(b"\xab" * 4096)
    status, output = start_web(tmp_path)
    assert status != 0
    assert f"database file {path} failed its integrity check" in output


@pytest.mark.processes
def test_a_sqlite_wal_file_without_its_database_is_refused_not_started_over(tmp_path):
    path = filled(tmp_path / "bandit.db")
    (tmp_path / "bandit.db-wal").write_bytes(b"")
    path.unlink()
    status, output = start_web(tmp_path)
    assert status != 0
    assert f"database file {path} is missing but {path}-wal is there" in output
    assert not path.exists()


def test_the_first_start_creates_the_sqlite_file_and_says_which(settings, caplog):
    caplog.set_level("WARNING", logger="bandit.db")
    open_database(settings.database)
    path = os.path.abspath(settings.database.path)
    assert f"created a new empty database: database file {path}" in caplog.text
    assert f"using database file {path} (schema version" in caplog.text
    assert sorted(os.listdir(os.path.dirname(path))) == ["bandit.db"]
    database.close()


def test_a_write_after_the_sqlite_file_was_deleted_is_refused_on_an_open_connection(db, settings):
    load(("e", date(2025, 12, 1), "a", 10, 1))
    os.unlink(settings.database.path)
    with pytest.raises(DatabaseFault, match="is missing"), write_transaction():
        pass


def test_a_new_connection_never_creates_the_sqlite_file(settings):
    open_database(settings.database)
    os.unlink(settings.database.path)
    with pytest.raises(DatabaseFault, match="is missing"):
        database.connect()
    assert not os.path.exists(settings.database.path)
    with pytest.raises(sqlite3.OperationalError):
        sqlite3.connect(f"file:{settings.database.path}?mode=rw", uri=True)


def test_a_run_on_a_sqlite_file_corrupted_since_start_fails_and_its_row_says_why(settings):
    path = settings.database.path
    open_database(settings.database)
    with database.connection_context():
        load(
            *[
                ("e", date(2025, 1, 1) + timedelta(days=d), v, 100, 5)
                for d in range(300)
                for v in ("a", "b", "c")
            ]
        )
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file
    pages = os.path.getsize(path) // 4096
    with open(path, "r+b") as f:
        f.seek((pages // 2) * 4096)
        f.write(b"\xab" * 4096)
    summary = run_at(NOW, settings)
    assert summary.status == "failed"
    assert summary.error.startswith("DatabaseFault: integrity check failed before the run: ")
    assert query(path, "SELECT status, error FROM run") == [("failed", summary.error)]


@pytest.mark.processes
@pytest.mark.parametrize("command", [["scheduler", "run-once"], ["ingest", "rows.csv"]])
def test_the_command_line_refuses_an_empty_sqlite_file_in_one_line(tmp_path, procs, command):
    path = tmp_path / "bandit.db"
    path.write_bytes(b"")
    child = procs.start(["-m", *command], child_env(path))
    assert child.wait(30) == 3
    assert f"cannot use the database: database file {path} is empty (0 bytes)" in child.output
    assert "Traceback" not in child.output


@pytest.mark.processes
def test_with_create_if_missing_off_a_missing_sqlite_file_is_refused_until_core_init(
    tmp_path, procs
):
    path = tmp_path / "bandit.db"
    status, output = start_web(tmp_path, BANDIT_DATABASE_CREATE_IF_MISSING="false")
    assert status != 0
    assert f"database file {path} does not exist: database.create_if_missing is false" in output
    assert not path.exists()
    env = child_env(path, BANDIT_DATABASE_CREATE_IF_MISSING="false")
    init = procs.start(["-m", "core", "init"], env)
    assert init.wait(30) == 0
    assert f"database ready: the database file {path}" in init.output
    assert procs.server(env).request("GET", "/healthz")[0] == 200
