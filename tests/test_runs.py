"""The run table as log and lock: leases, abandoned runs, scheduled times, cancellation."""

import os
import signal
import socket
import threading
from datetime import UTC, date, datetime, timedelta

import pytest

from core.schema import Allocation, Run
from scheduler import clock
from scheduler.job import run_job
from scheduler.runs import (
    ABANDONED,
    expire_abandoned_runs,
    finish_run,
    renew_lease,
    renew_until,
    start_run,
)
from tests.helpers import NOW, allocations, load, load_contract, utc

FIRE = utc(2025, 12, 22, 23, 50)
STAMP = NOW.replace(tzinfo=None)  # NOW as the run table stores it
seed = load_contract


def running_row(lease_until, scheduled_for=None):
    return Run.create(
        trigger="nightly",
        effective_date=date(2025, 12, 23),
        lease_until=lease_until,
        scheduled_for=scheduled_for,
    )


def test_a_run_whose_lease_ran_out_is_marked_failed_by_the_next_run(db, settings):
    seed()
    dead = running_row(STAMP - timedelta(seconds=1))
    assert run_job(NOW, settings).status == "success"
    dead = Run.get_by_id(dead.id)
    assert (dead.status, dead.error) == ("failed", ABANDONED)
    assert dead.finished_at == STAMP  # the next run's now


def test_a_sqlite_run_with_a_live_lease_is_left_running(db):
    # On SQLite a lease is judged by the caller's clock, and a row with no known holder
    # lives until it runs out.
    live = running_row(STAMP + timedelta(seconds=30))
    assert expire_abandoned_runs(NOW) == 0
    assert Run.get_by_id(live.id).status == "running"


def test_a_run_whose_process_is_alive_is_left_running(db):
    run_id = start_run(NOW, "manual", date(2025, 12, 23), None, 60)
    assert expire_abandoned_runs(NOW) == 0
    assert Run.get_by_id(run_id).status == "running"
    finish_run(run_id, NOW, "success", 0)


def test_a_postgres_run_whose_session_lock_is_free_is_abandoned_at_once(db):
    # No process holds the run's session lock (its connection is gone, on whatever host):
    # dead, however long its lease still runs.
    row = running_row(datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=1))
    assert expire_abandoned_runs(NOW) == 1
    assert (Run.get_by_id(row.id).status, Run.get_by_id(row.id).error) == ("failed", ABANDONED)


def test_a_postgres_lease_is_stamped_and_judged_by_the_database_clock(db):
    # The caller's now (a year off here) moves neither: skew between hosts cannot expire a
    # live lease, nor keep a dead one.
    before = datetime.now(UTC).replace(tzinfo=None)
    run_id = start_run(NOW, "manual", date(2025, 12, 23), None, 60)
    lease = Run.get_by_id(run_id).lease_until
    assert before + timedelta(seconds=55) < lease < before + timedelta(seconds=120)
    assert renew_lease(run_id, 600, NOW)
    assert Run.get_by_id(run_id).lease_until > lease + timedelta(seconds=500)
    assert expire_abandoned_runs(NOW + timedelta(days=400)) == 0
    finish_run(run_id, NOW, "success", 0)


def test_renewing_moves_the_sqlite_lease_forward_only_while_running(db):
    row = running_row(STAMP)
    assert renew_lease(row.id, 60, NOW + timedelta(seconds=20))
    assert Run.get_by_id(row.id).lease_until == STAMP + timedelta(seconds=80)
    Run.update(status="failed").where(Run.id == row.id).execute()
    assert not renew_lease(row.id, 60, NOW + timedelta(seconds=40))


def test_the_sqlite_lease_thread_renews_relative_to_the_clock_it_is_given(db):
    row = running_row(STAMP)
    stopped = threading.Event()

    def clock():
        stopped.set()  # one renewal, then the thread's loop ends
        return NOW + timedelta(minutes=5)

    renew_until(stopped, row.id, 1, clock)
    assert Run.get_by_id(row.id).lease_until == STAMP + timedelta(minutes=5, seconds=1)


def test_every_row_a_run_writes_is_stamped_from_its_now(db, settings):
    seed()
    summary = run_job(NOW, settings)
    run = Run.get_by_id(summary.run_id)
    created = {a.created_at for a in Allocation.select()}
    assert run.started_at == STAMP
    assert len(created) == 1 and STAMP <= created.pop() <= run.finished_at
    assert run.finished_at < STAMP + timedelta(hours=1)  # NOW's clock, not the wall clock's


def test_finished_runs_hold_no_lease(db, settings):
    seed()
    summary = run_job(NOW, settings)
    assert Run.get_by_id(summary.run_id).lease_until is None


@pytest.mark.parametrize("status", ["running", "success"])
def test_a_scheduled_time_held_or_done_is_not_started_again_on_sqlite(db, status):
    row = running_row(STAMP + timedelta(seconds=30), scheduled_for=FIRE.replace(tzinfo=None))
    Run.update(status=status).where(Run.id == row.id).execute()
    assert start_run(NOW, "nightly", date(2025, 12, 23), None, 60, scheduled_for=FIRE) is None


def test_a_scheduled_time_held_by_a_live_run_or_done_is_not_started_again(db):
    run_id = start_run(NOW, "nightly", date(2025, 12, 23), None, 60, scheduled_for=FIRE)
    assert start_run(NOW, "catch_up", date(2025, 12, 23), None, 60, scheduled_for=FIRE) is None
    finish_run(run_id, NOW, "success", 0)
    assert start_run(NOW, "catch_up", date(2025, 12, 23), None, 60, scheduled_for=FIRE) is None


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_scheduled_time_that_failed_can_be_run_again(db, status):
    row = running_row(None, scheduled_for=FIRE.replace(tzinfo=None))
    Run.update(status=status).where(Run.id == row.id).execute()
    assert start_run(NOW, "catch_up", date(2025, 12, 23), None, 60, scheduled_for=FIRE) is not None


def test_the_same_scheduled_time_runs_once(db, settings):
    seed()
    assert clock.run_scheduled(settings, "nightly", FIRE, NOW) is not None
    assert clock.run_scheduled(settings, "catch_up", FIRE, NOW) is None
    assert Run.select().count() == 1


def test_a_stop_request_cancels_the_run_and_keeps_previous_allocations(db, settings):
    seed()
    run_job(NOW, settings)
    before = allocations()
    load(("ctr_test", date(2025, 12, 22), "variant", 1000, 10))
    summary = run_job(NOW, settings, should_stop=lambda: True)
    assert summary.status == "cancelled"
    run = Run.get_by_id(summary.run_id)
    assert run.status == "cancelled" and run.error == summary.error
    assert STAMP <= run.finished_at < STAMP + timedelta(hours=1)
    assert allocations() == before
    assert Allocation.select().where(Allocation.run == run.id).count() == 0


def test_a_failed_run_has_the_same_error_in_its_row_and_its_summary(db, settings):
    seed()

    def broken():
        raise RuntimeError("disk full")

    summary = run_job(NOW, settings, should_stop=broken)
    assert (summary.status, summary.error) == ("failed", "RuntimeError: disk full")
    assert Run.get_by_id(summary.run_id).error == summary.error


@pytest.fixture
def restore_signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def test_clock_stopped_during_catch_up_records_cancelled_and_does_not_start(
    db, settings, restore_signals, monkeypatch
):
    seed()
    stop = threading.Event()
    stop.set()
    monkeypatch.setattr(clock, "build_scheduler", lambda *a: pytest.fail("scheduler started"))
    clock.run_clock(settings, stop)
    run = Run.get()
    assert (run.trigger, run.status) == ("catch_up", "cancelled")


def test_sigterm_handler_only_sets_the_stop_event(restore_signals):
    stop = threading.Event()
    clock.stop_on_signals(stop)
    signal.raise_signal(signal.SIGTERM)
    assert stop.is_set()


def test_scheduled_for_is_stored_as_naive_utc(db, settings):
    seed()
    berlin_fire = datetime.fromisoformat("2025-12-23T00:50:00+01:00")
    clock.run_scheduled(settings, "nightly", berlin_fire, NOW)
    assert Run.get().scheduled_for == datetime(2025, 12, 22, 23, 50)


def test_sigterm_during_a_nightly_run_cancels_it_and_the_clock_returns(
    db, settings, restore_signals, monkeypatch
):
    import dataclasses
    import os

    from core.settings import ScheduleSettings

    seed()
    load(*[(f"more_{i}", date(2025, 12, 22), "a", 10, 1) for i in range(5)])
    monkeypatch.setenv("BANDIT_TEST_PAUSE_COMPUTE", "0.2")
    settings = dataclasses.replace(settings, schedule=ScheduleSettings(catch_up=False))
    real_build = clock.build_scheduler

    def fire_now(*args):
        scheduler = real_build(*args)
        scheduler.get_job("nightly").modify(next_run_time=datetime.now().astimezone())
        return scheduler

    monkeypatch.setattr(clock, "build_scheduler", fire_now)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        clock.run_clock(settings)
    finally:
        timer.cancel()
    run = Run.get()
    assert (run.trigger, run.status, run.lease_until) == ("nightly", "cancelled", None)
    assert Allocation.select().count() == 0


def test_a_run_whose_process_is_gone_on_this_host_is_failed_before_its_lease_ends(db):
    import subprocess
    import sys

    from scheduler.runs import holder_is_gone

    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = running_row(STAMP + timedelta(seconds=60))
    Run.update(holder=f"{socket.gethostname()}:{finished.stdout.strip()}").where(
        Run.id == dead.id
    ).execute()
    assert expire_abandoned_runs(NOW) == 1
    assert Run.get_by_id(dead.id).status == "failed"
    assert not holder_is_gone(f"{socket.gethostname()}:{os.getpid()}")
    assert not holder_is_gone("some-other-host:1")
    assert not holder_is_gone(None)
