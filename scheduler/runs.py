"""The run table is the job's log and its lock.

Every run row carries a lease that its process renews while it works. A process that
dies (SIGKILL, power cut, OOM) stops renewing; the next run that starts, anywhere, marks
such a row failed, so a dead run never stays 'running'. On the same host a dead holder
is noticed at once (its pid is gone), without waiting for the lease. A scheduled run
also records the fire time it is for, and is started only if no live or successful run
holds that time: two clocks on one database (a mistake, but one that happens during
deploys, and by design with a clock on each of several hosts) do the night's work once.
The check and the insert share one write transaction, and a partial unique index
(migration step 7) refuses a second live row for one time even so.

On PostgreSQL, liveness does not depend on hosts: the run's process holds a session lock
for the run on a connection of its own (core.db.hold_run), which the server frees when
that session ends, and leases are stamped and compared with the database's clock.
"""

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from peewee import IntegrityError

from core.db import (
    DATABASE_ERRORS,
    as_utc,
    database,
    engine,
    hold_run,
    is_busy,
    lease_now,
    naive_utc,
    write_transaction,
)
from core.runs_view import SCHEDULED_TRIGGERS
from core.schema import Run

Clock = Callable[[], datetime]  # returns an aware time

log = logging.getLogger("bandit.runs")
ABANDONED = "abandoned: its process died (killed or crashed) or stopped renewing the lease"


class RunCancelled(Exception):
    """The process was asked to stop before the run published anything."""


def real_now() -> datetime:
    return datetime.now(UTC)


def clock_from(now: datetime) -> Clock:
    """The run's clock: `now` when the run starts, then moving on with the real time elapsed.

    Every row a run writes is stamped from it, so a fixed `now` fixes the stamps, while the
    lease still moves forward for as long as the run lasts (a lease stamped with a fixed
    time would run out under a long run, and another process would take the run over).
    """
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


def last_scheduled_success() -> datetime | None:
    """When (aware, UTC) the latest successful nightly or catch-up run started: what the
    clock's catch-up and /healthz both go by. Call with a connection open.

    The start, not the end: a run starts at the `now` its scheduled time was worked out
    from, so its start says which night it did. A run for one night that ends after the
    next scheduled time has not done that next night.
    """
    started = (
        Run.select(Run.started_at)
        .where(Run.trigger.in_(SCHEDULED_TRIGGERS) & (Run.status == "success"))
        .order_by(Run.started_at.desc())
        .scalar()
    )
    return as_utc(started) if started else None


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_gone(holder: str | None, run_id: int | None = None) -> bool:
    """Whether the process that holds a run is known to be gone: on SQLite, a holder on
    this host whose pid no longer exists (anything uncertain says False and the lease
    decides); on PostgreSQL, the run's session lock is free, on whatever host it ran.

    Lets a clock restarted right after a crash take that night over at once instead of
    waiting for the lease.
    """
    return engine().holder_is_gone(holder, run_id)


def abandoned(run: Run, now: datetime) -> bool:
    if run.lease_until is None or run.lease_until < now:
        return True
    return holder_is_gone(run.holder, run.id)


HELD: dict[int, object] = {}  # run id -> the connection holding its session lock (PostgreSQL)


def release_run(run_id: int) -> None:
    held = HELD.pop(run_id, None)
    if held is not None:
        held.close()


def expire_abandoned_runs(now: datetime) -> int:
    """Mark failed every running row whose process is gone; call in a write transaction."""
    lease_clock = lease_now(now)
    now = naive_utc(now)
    running = Run.select(Run.id, Run.lease_until, Run.holder).where(Run.status == "running")
    ids = [run.id for run in running if run.id not in HELD and abandoned(run, lease_clock)]
    if not ids:
        return 0
    Run.update(status="failed", finished_at=now, error=ABANDONED).where(Run.id.in_(ids)).execute()
    log.warning("marked %d abandoned run(s) failed", len(ids))
    return len(ids)


def scheduled_time_taken(scheduled_for: datetime) -> bool:
    return (
        Run.select()
        .where((Run.scheduled_for == scheduled_for) & Run.status.in_(("running", "success")))
        .exists()
    )


def scheduled_time_tried(scheduled_for: datetime) -> bool:
    """Whether any run, in any state, was started for this scheduled time."""
    return Run.select().where(Run.scheduled_for == naive_utc(scheduled_for)).exists()


def start_run(
    now: datetime,
    trigger: str,
    effective_date: date,
    experiment_id: str | None,
    lease_seconds: int,
    scheduled_for: datetime | None = None,
) -> int | None:
    """Insert a running row started at now; return its id, None if the scheduled time is taken."""
    when = naive_utc(scheduled_for) if scheduled_for else None
    held = None
    try:
        with write_transaction("runs"):
            expire_abandoned_runs(now)
            if when is not None and scheduled_time_taken(when):
                return None
            run = Run.create(
                trigger=trigger,
                effective_date=effective_date,
                experiment_filter=experiment_id,
                started_at=naive_utc(now),
                scheduled_for=when,
                lease_until=lease_now(now) + timedelta(seconds=lease_seconds),
                holder=holder_name(),
            )
            held = hold_run(run.id)  # before the row is visible to anyone: no gap
    except IntegrityError:
        # Another clock inserted a live run for this time after our check (the partial
        # unique index of step 7 refused ours): the time is taken.
        if held is not None:
            held.close()
        if when is None:
            raise
        return None
    except BaseException:
        if held is not None:
            held.close()
        raise
    if held is not None:
        HELD[run.id] = held
    return run.id


def finish_run(
    run_id: int, now: datetime, status: str, processed: int, error: str | None = None
) -> None:
    release_run(run_id)
    with write_transaction("runs"):
        (
            Run.update(
                status=status,
                experiments_processed=processed,
                error=error,
                finished_at=naive_utc(now),
                lease_until=None,
            )
            .where(Run.id == run_id)
            .execute()
        )


class RunLost(Exception):
    """Another process marked this run abandoned while it worked; it must not publish."""


def mark_succeeded(run_id: int, processed: int, now: datetime) -> None:
    """Inside the publish transaction: a run is 'success' exactly when its split is
    committed, and a run another process has meanwhile marked abandoned publishes nothing."""
    updated = (
        Run.update(
            status="success",
            experiments_processed=processed,
            finished_at=naive_utc(now),
            lease_until=None,
        )
        .where((Run.id == run_id) & (Run.status == "running"))
        .execute()
    )
    if updated != 1:
        raise RunLost(f"run {run_id} was marked abandoned by another process; not publishing")


def record_phases(run_id: int, phases: dict[str, float]) -> None:
    """After the publish: how long each phase of the successful run took, in seconds. The
    run has succeeded already, so a failure here is logged, never turned into the run's."""
    text = json.dumps({name: round(seconds, 6) for name, seconds in phases.items()})
    try:
        with write_transaction():
            Run.update(phase_seconds=text).where(Run.id == run_id).execute()
    except Exception:
        log.exception("could not record the phase times of run %s", run_id)


def renew_lease(run_id: int, lease_seconds: int, now: datetime) -> bool:
    """Push the lease to lease_seconds after now; False if the row is no longer ours to renew."""
    with database.connection_context(), write_transaction("runs"):
        renewed = (
            Run.update(lease_until=lease_now(now) + timedelta(seconds=lease_seconds))
            .where((Run.id == run_id) & (Run.status == "running"))
            .execute()
        )
    return renewed == 1


def renew_until(stopped: threading.Event, run_id: int, lease_seconds: int, clock: Clock) -> None:
    while not stopped.wait(lease_seconds / 3):
        try:
            if not renew_lease(run_id, lease_seconds, clock()):
                log.warning("run %s lost its lease (marked abandoned by another process)", run_id)
                return
        except Exception:  # a busy database must not kill the run; the next tick retries
            log.exception("could not renew the lease of run %s", run_id)


@contextmanager
def lease_kept(run_id: int, lease_seconds: int, clock: Clock):
    """Renew the run's lease (stamped from clock) in a background thread while the block runs."""
    stopped = threading.Event()
    renewer = threading.Thread(
        target=renew_until, args=(stopped, run_id, lease_seconds, clock), name=f"lease-{run_id}"
    )
    renewer.daemon = True
    renewer.start()
    try:
        yield
    finally:
        stopped.set()
        renewer.join(timeout=lease_seconds)
        release_run(run_id)


def until_stopped(items, should_stop):
    """Yield items, raising RunCancelled before any item once should_stop() is true."""
    for item in items:
        raise_if_stopped(should_stop)
        yield item


def raise_if_stopped(should_stop) -> None:
    if should_stop is not None and should_stop():
        raise RunCancelled("cancelled: the process was asked to stop before publishing")


MAX_BACKOFF_S = 60.0


def retrying(action: Callable, what: str, budget_s: float, should_stop=None):
    """action() again while it fails on a busy write lock, waiting 1 s, 2 s, 4 s ... (at
    most a minute) for up to budget_s in all; then the lock error is raised. A stop asked
    for meanwhile ends the wait with RunCancelled."""
    delay, waited = 1.0, 0.0
    while True:
        try:
            return action()
        except DATABASE_ERRORS as exc:
            if not is_busy(exc) or waited + delay > budget_s:
                raise
            log.warning("%s: the database is locked (%s); again in %.0f s", what, exc, delay)
        pause(delay, should_stop)
        waited, delay = waited + delay, min(delay * 2, MAX_BACKOFF_S)


def pause(seconds: float, should_stop) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        raise_if_stopped(should_stop)
        time.sleep(min(left, 0.25))
