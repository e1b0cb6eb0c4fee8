"""Storage faults under a running web process: a full disk, an I/O error, a read-only file.
Each is a 503 naming the cause with Retry-After, logged once per request without a
traceback; /healthz is degraded until a write succeeds again; nothing acknowledged is
lost; the service recovers when the fault goes."""

import errno
import os
import resource
import signal
import subprocess

import pytest

from core.db import OperationalError, database, write_transaction
from core.db import health as storage_health
from core.migrations import open_database
from core.schema import Experiment
from core.settings import DatabaseSettings
from tests.helpers import body
from tests.postgres import require_cluster
from tests.processes import child_env, query, run_once, writer_pids


def post(day: int) -> dict:
    return body(date=f"2025-10-{day % 28 + 1:02d}", experiment_id=f"e{day}")


def post_until_refused(server, limit: int = 2000) -> tuple[int, dict, int]:
    """POST new experiments until one is refused: (status, answer, POSTs acknowledged)."""
    for sent in range(limit):
        status, answer = server.request("POST", "/data", post(sent))
        if status != 200:
            return status, answer, sent
    pytest.fail(f"{limit} POSTs were all stored: the fault never showed")


def assert_storage_refusal(status, answer, cause: str) -> None:
    assert status == 503, answer
    assert answer["error"] == "storage"
    assert cause in answer["message"]
    assert answer["message"].endswith("nothing was stored, retry later")


def assert_degraded(server, cause: str) -> None:
    status, health = server.request("GET", "/healthz")
    assert status == 200
    assert health["status"] == "degraded"
    assert [reason for reason in health["reasons"] if cause in reason] != []


def stored_experiments(path) -> int:
    return query(path, "SELECT count(*) FROM experiment")[0][0]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs at tmp_path/disk (needs root with CAP_SYS_ADMIN: a container may not
    have it, and then the test says so)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (not root?): {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory) -> None:
    """Write a file until the filesystem has no space left (unbuffered: a buffer left
    over would fail again at close, depending on how the free space divides)."""
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC


@pytest.mark.processes
def test_a_full_disk_under_the_sqlite_file_is_a_503_naming_it_and_writes_resume_when_space_returns(
    small_disk, procs
):
    path = small_disk / "bandit.db"
    server = procs.server(child_env(path))
    assert server.request("POST", "/data", post(0))[0] == 200
    fill(small_disk)
    status, answer, acknowledged = post_until_refused(server)
    assert_storage_refusal(status, answer, "the disk is full")
    assert_degraded(server, "the disk is full")
    os.unlink(small_disk / "filler")
    assert server.request("POST", "/data", post(5000))[0] == 200
    assert server.request("GET", "/healthz")[1]["status"] == "ok"
    server.signal(signal.SIGTERM)
    server.wait()
    assert stored_experiments(path) == acknowledged + 2  # post(0), the acknowledged, 5000
    assert "Traceback" not in server.output
    assert "cannot rollback" not in server.output


@pytest.mark.processes
def test_an_io_error_on_the_sqlite_file_is_a_503_naming_it_and_writes_resume_after_it(
    tmp_path, procs
):
    path = tmp_path / "bandit.db"
    server = procs.server(child_env(path))
    assert server.request("POST", "/data", post(0))[0] == 200
    # Files of the web process and of its writer may not grow past the WAL's size now:
    # writing beyond is EFBIG.
    limit = (tmp_path / "bandit.db-wal").stat().st_size
    writers = [server.process.pid, *writer_pids(server.process.pid)]
    assert len(writers) == 2
    for pid in writers:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    status, answer, acknowledged = post_until_refused(server)
    assert_storage_refusal(status, answer, "disk I/O error")
    assert_degraded(server, "disk I/O error")
    for pid in writers:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
    assert server.request("POST", "/data", post(5000))[0] == 200
    assert server.request("GET", "/healthz")[1]["status"] == "ok"
    server.signal(signal.SIGTERM)
    server.wait()
    assert stored_experiments(path) == acknowledged + 2
    assert "Traceback" not in server.output


@pytest.fixture
def immutable(tmp_path):
    """chattr +i (refused even to root) on a file, undone at the end."""
    marked = []

    def mark(path, on: bool = True):
        done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a file immutable here: {done.stderr.decode().strip()}")
        marked.append(path)

    yield mark
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False)


@pytest.mark.processes
def test_a_read_only_sqlite_file_is_a_503_naming_it_and_writes_resume(tmp_path, procs, immutable):
    path = tmp_path / "bandit.db"
    first = procs.server(child_env(path))
    assert first.request("POST", "/data", post(0))[0] == 200
    first.signal(signal.SIGTERM)
    first.wait()
    immutable(path)
    server = procs.server(child_env(path))
    status, answer = server.request("POST", "/data", post(1))
    assert_storage_refusal(status, answer, "the database file is read-only")
    assert_degraded(server, "read-only")
    immutable(path, on=False)
    status, answer = server.request("POST", "/data", post(2))
    assert status == 200, answer
    assert server.request("GET", "/healthz")[1]["status"] == "ok"
    server.signal(signal.SIGTERM)
    server.wait()
    assert stored_experiments(path) == 2
    assert "Traceback" not in server.output


LOAD = """
from datetime import date
from core.migrations import open_database
from core.settings import load_settings
from ingest.metrics import MetricRow, store_rows
open_database(load_settings().database)
store_rows([MetricRow(f"e{e}", date(2025, 12, 1), v, 100, 5) for e in range(500) for v in "ab"])
"""


@pytest.mark.processes
def test_a_run_that_meets_a_full_disk_under_the_sqlite_file_fails_and_its_row_names_the_disk(
    small_disk, procs
):
    path = small_disk / "bandit.db"
    env = child_env(path)
    assert procs.start(["-c", LOAD], env).wait(60) == 0
    reserve = small_disk / "reserve"
    reserve.write_bytes(b"\0" * 65536)  # room for the run's row, not for its 1,000 arms
    fill(small_disk)
    reserve.unlink()
    child = run_once(procs, env)
    assert child.process.returncode == 1
    [(status, error)] = query(path, "SELECT status, error FROM run")
    assert status == "failed"
    assert error == "OperationalError: database or disk is full"
    assert child.output.count("database or disk is full") <= 3  # log, row, summary line


def test_a_full_disk_inside_a_savepoint_keeps_sqlites_words_and_degrades_health(db):
    pages = db.execute_sql("PRAGMA page_count").fetchone()[0]
    db.execute_sql(f"PRAGMA max_page_count = {pages}")  # this connection's disk is full
    full = pytest.raises(OperationalError, match=r"^database or disk is full$")
    with write_transaction(), full, db.atomic():  # a savepoint, as each POST in a group
        Experiment.insert_many([{"name": f"e{i:0100}"} for i in range(5000)]).execute()
    assert storage_health.problems() == ["storage: the disk is full (database or disk is full)"]
    db.execute_sql("PRAGMA max_page_count = 1073741823")
    with write_transaction():
        Experiment.create(name="fits")
    assert storage_health.problems() == []


@pytest.fixture
def own_postgres():
    """A PostgreSQL cluster of this test's own (the session's is shared: it cannot be
    stopped), with the service's schema in its `postgres` database."""
    cluster = require_cluster()
    try:
        open_database(DatabaseSettings(url=cluster.url()), create=True)
        database.obj.close_all()
        yield cluster
    finally:
        cluster.stop()


@pytest.mark.processes
def test_the_postgres_server_stopped_under_a_running_web_is_a_503_naming_it_and_writes_resume(
    own_postgres, procs
):
    server = procs.server(child_env(own_postgres.url()))
    assert server.request("POST", "/data", post(0))[0] == 200
    own_postgres._run("pg_ctl", "-w", "-D", own_postgres.data, "-m", "fast", "stop")
    status, answer = server.request("POST", "/data", post(1))
    assert_storage_refusal(status, answer, "database server")
    status, health = server.request("GET", "/healthz")
    assert status == 503 and health["status"] == "error", health
    assert any("database server was shut down" in r for r in health["reasons"]), health
    own_postgres.launch()
    status, answer = server.request("POST", "/data", post(2))
    assert status == 200, answer
    assert server.request("GET", "/healthz")[1]["status"] == "ok"
    assert stored_experiments(own_postgres.url()) == 2
    assert "unhandled error" not in server.output
