"""A scheduled run that meets a held write lock retries with backoff and ends with a row
saying what happened; the clock looks again for a scheduled time that passed without a
run. Real clock processes, a real lock held by another connection."""

import signal
from datetime import timedelta

import pytest

from core.db import OperationalError, naive_utc
from core.schema import Run
from scheduler.clock import CHECK_EVERY_S, check_missed
from scheduler.runs import retrying
from tests.helpers import NOW, load_contract
from tests.processes import child_env, is_postgres, query, wait_for, write_lock


def runs(target) -> list[tuple]:
    return query(target, "SELECT trigger, status, error FROM run ORDER BY id")


@pytest.fixture
def env(settings):
    return child_env(
        settings,
        BANDIT_DATABASE_BUSY_TIMEOUT_MS=100,
        BANDIT_SCHEDULE_LEASE_SECONDS=2,
        BANDIT_SCHEDULE_RETRY_SECONDS=30,
    )


def created(procs, env) -> None:
    """The database, made by a run-once (whose manual run is row 1)."""
    assert procs.start(["-m", "scheduler", "run-once"], env).wait(60) == 0


@pytest.mark.processes
def test_a_scheduled_run_waits_out_a_lock_held_when_it_starts(settings, procs, env):
    created(procs, env)
    with write_lock(settings):
        clock = procs.start(["-m", "scheduler"], env)
        clock.wait_for_line(r"starting the run: the database is locked .*again in 1 s")
    wait_for(lambda: len(runs(settings)) == 2, 20, "the catch-up run's row")
    wait_for(lambda: runs(settings)[1][1] == "success", 20, "the catch-up run to succeed")
    assert runs(settings)[1][0] == "catch_up"
    clock.signal(signal.SIGTERM)
    assert clock.wait() == 0


@pytest.mark.processes
def test_a_lock_taken_before_the_publish_is_waited_out(settings, procs, env):
    created(procs, env)
    clock = procs.start(["-m", "scheduler"], {**env, "BANDIT_TEST_PAUSE_STAGE": "1"})
    clock.wait_for_line("test pause: stage")
    with write_lock(settings):
        clock.wait_for_line(r"publishing run 2: the database is locked .*again in 2 s")
    wait_for(lambda: runs(settings)[1][1] == "success", 30, "the catch-up run to succeed")
    clock.signal(signal.SIGTERM)
    assert clock.wait() == 0


@pytest.mark.processes
def test_a_lock_outlasting_the_retries_fails_the_run_with_the_reason_in_its_row(
    settings, procs, env
):
    created(procs, env)
    quick = {**env, "BANDIT_TEST_PAUSE_STAGE": "1", "BANDIT_SCHEDULE_RETRY_SECONDS": "1"}
    clock = procs.start(["-m", "scheduler"], quick)
    clock.wait_for_line("test pause: stage")
    with write_lock(settings):
        clock.wait_for_line(r"recording run 2 failed: the database is locked")
    wait_for(lambda: runs(settings)[1][1] != "running", 30, "the run's outcome in its row")
    _, status, error = runs(settings)[1]
    assert status == "failed"
    reason = "the write lock stayed taken through 1 s of retries: OperationalError: "
    if is_postgres(settings):
        assert error.startswith(reason + "canceling statement due to lock timeout"), error
    else:
        assert error == reason + "database is locked"
    clock.signal(signal.SIGTERM)
    assert clock.wait() == 0


def test_retrying_gives_up_at_once_without_a_budget():
    calls = []

    def locked():
        calls.append(1)
        raise OperationalError("database is locked")

    with pytest.raises(OperationalError, match="locked"):
        retrying(locked, "test", 0)
    assert calls == [1]


def test_retrying_does_not_retry_other_errors():
    def broken():
        raise OperationalError("no such table: run")

    with pytest.raises(OperationalError, match="no such table"):
        retrying(broken, "test", 600)


def test_the_periodic_check_runs_a_scheduled_time_that_passed_without_a_row(db, settings):
    load_contract()
    started = NOW - timedelta(hours=1)  # the clock was up at 23:50, but nothing ran
    later = NOW + timedelta(seconds=CHECK_EVERY_S)
    summary = check_missed(settings, started, now=later)
    assert (summary.trigger, summary.status) == ("catch_up", "success")
    assert check_missed(settings, started, now=later + timedelta(minutes=5)) is None


def test_the_periodic_check_leaves_a_failed_run_and_times_before_the_clock_started(db, settings):
    later = NOW + timedelta(seconds=CHECK_EVERY_S)
    assert check_missed(settings, NOW + timedelta(seconds=1), now=later) is None
    Run.create(
        trigger="nightly",
        effective_date=NOW.date() + timedelta(days=1),
        scheduled_for=naive_utc(NOW),
        status="failed",
        error="disk full",
    )
    assert check_missed(settings, NOW - timedelta(hours=1), now=later) is None


def test_the_periodic_check_gives_the_cron_job_its_minute_first(db, settings):
    just_after = NOW + timedelta(seconds=CHECK_EVERY_S - 1)
    assert check_missed(settings, NOW - timedelta(hours=1), now=just_after) is None
