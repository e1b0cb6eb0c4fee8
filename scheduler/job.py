"""The nightly job: aggregate -> sample -> publish, recorded in the runs table.

The same code runs from the clock, `python -m scheduler run-once` and POST /recompute.
`now` is always a parameter so tests can pass a fixed time.
"""

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from core.db import DatabaseFault, database, integrity_problem, is_busy, storage_fault
from core.experiments import PolicyState, load_states
from core.policy import next_effective_date
from core.settings import Settings
from scheduler.aggregate import totals_in_chunks
from scheduler.allocate import allocate
from scheduler.pool import CHUNK_EXPERIMENTS, in_order, spill, unspill
from scheduler.publish import publish_allocations
from scheduler.runs import (
    Clock,
    RunCancelled,
    clock_from,
    finish_run,
    lease_kept,
    mark_succeeded,
    raise_if_stopped,
    record_phases,
    retrying,
    start_run,
    until_stopped,
)

log = logging.getLogger("bandit.job")


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    trigger: str
    effective_date: date
    status: str
    experiments_processed: int
    error: str | None = None


@dataclass(frozen=True)
class ChunkTask:
    """One chunk of totals and what allocate() needs for it, read from the database
    beforehand. Pickled to a pool's worker, so should_stop is set only when the chunk runs
    in this process (a pool cannot pickle it)."""

    totals: list
    states: dict[int, PolicyState]
    effective_date: date
    settings: Settings
    should_stop: Callable[[], bool] | None = None


def allocate_chunk(task: ChunkTask) -> list:
    """allocate() over one chunk; a module-level function so a spawn pool can pickle it."""
    results = [
        allocate(t, task.states[t.experiment_pk], task.effective_date, task.settings)
        for t in until_stopped(task.totals, task.should_stop)
    ]
    return [r for r in results if r is not None]


def chunk_tasks(experiment_id: str | None, effective_date: date, settings: Settings, should_stop):
    """A ChunkTask at a time, counted as of the run's local day. should_stop() is asked
    before each chunk, and before each experiment with one worker."""
    as_of = effective_date - timedelta(days=1)
    in_process = should_stop if settings.sampling.workers <= 1 else None
    chunks = totals_in_chunks(experiment_id, CHUNK_EXPERIMENTS, as_of, settings.policy)
    for chunk in until_stopped(chunks, should_stop):
        states = load_states([t.experiment_pk for t in chunk], settings.policy)
        yield ChunkTask(chunk, states, effective_date, settings, in_process)


def compute(
    experiment_id: str | None, effective_date: date, settings: Settings, spilled, should_stop=None
) -> int:
    """Allocate every experiment chunk by chunk into the spill file; return how many."""
    tasks = chunk_tasks(experiment_id, effective_date, settings, should_stop)
    return spill(in_order(allocate_chunk, tasks, settings.sampling.workers), spilled)


def run_job(
    now: datetime,
    settings: Settings,
    trigger: str = "manual",
    experiment_id: str | None = None,
    effective_date: date | None = None,
    scheduled_for: datetime | None = None,
    should_stop=None,
    on_start: Callable[[int], None] | None = None,
) -> RunSummary | None:
    """Compute and publish allocations for every experiment (or one); never half-publishes.

    A scheduled run (scheduled_for set) returns None without running when another process
    holds or has done that scheduled time. should_stop() is asked before each experiment
    and before publishing; once it is true the run ends 'cancelled' with nothing written.
    Every row the run writes is stamped from now (runs.clock_from). on_start(run_id) is
    called once the run's row exists (POST /recompute answers with it when the run is long).
    """
    effective_date = effective_date or next_effective_date(now, settings.tz)
    lease = settings.schedule.lease_seconds
    # A scheduled run waits out a long lock; a manual one's caller is there to retry.
    retry = settings.schedule.retry_seconds if scheduled_for else 0
    with database.connection_context():
        run_id = retrying(
            lambda: start_run(now, trigger, effective_date, experiment_id, lease, scheduled_for),
            "starting the run",
            retry,
            should_stop,
        )
        if run_id is None:
            log.info("the run scheduled for %s is another process's; skipping", scheduled_for)
            return None
        if on_start is not None:
            on_start(run_id)
        clock = clock_from(now)
        try:
            work = Work(run_id, experiment_id, effective_date, settings, clock, retry, should_stop)
            processed, phases = compute_and_publish(work)
        except Exception as exc:
            status, error = record_failure(run_id, exc, clock, retry)
            return RunSummary(run_id, trigger, effective_date, status, 0, error)
        record_phases(run_id, phases)
    return RunSummary(run_id, trigger, effective_date, "success", processed)


@dataclass(frozen=True)
class Work:
    """What a started run computes and publishes, and how long it waits out a lock."""

    run_id: int
    experiment_id: str | None
    effective_date: date
    settings: Settings
    clock: Clock
    retry_s: float
    should_stop: Callable[[], bool] | None


def compute_and_publish(work: Work) -> tuple[int, dict]:
    """Check the file, compute every experiment into a spill file, publish it (retrying a
    held lock); return how many experiments were published and each phase's seconds."""
    check_integrity()
    lease = work.settings.schedule.lease_seconds
    with lease_kept(work.run_id, lease, work.clock), tempfile.TemporaryFile() as spilled:
        started = time.monotonic()
        processed = compute(
            work.experiment_id, work.effective_date, work.settings, spilled, work.should_stop
        )
        computed = time.monotonic() - started
        raise_if_stopped(work.should_stop)
        times = retrying(
            lambda: publish(work.run_id, work.effective_date, spilled, processed, work.clock),
            f"publishing run {work.run_id}",
            work.retry_s,
            work.should_stop,
        )
    return processed, {"compute": computed, "staging": times.staging, "publish_lock": times.locked}


def check_integrity() -> None:
    """PRAGMA quick_check before any work: a corrupt file fails the run, naming the damage,
    instead of a publish that fails (or succeeds) on it half-way."""
    problem = integrity_problem()
    if problem:
        raise DatabaseFault(f"integrity check failed before the run: {problem}")


def publish(run_id: int, effective_date: date, spilled, processed: int, clock: Clock):
    """Publish the spilled results, with the run's success in the same transaction."""
    times = publish_allocations(
        run_id,
        effective_date,
        unspill(spilled),
        clock,
        before_commit=lambda: mark_succeeded(run_id, processed, clock()),
    )
    log.info(
        "run %s published %d experiments for %s (staging %.2f s, publish transaction %.2f s)",
        run_id,
        processed,
        effective_date,
        times.staging,
        times.locked,
        extra={"run_id": run_id},  # a field of its own in JSON log lines
    )
    return times


def record_failure(run_id: int, exc: Exception, clock: Clock, retried_s: float) -> tuple[str, str]:
    """End the run 'cancelled' or 'failed'; return that status and the error, which the
    run's row and its summary both carry. The row is written even through a lock that
    outlasted the run's own retries; if even that fails, the log says so and the row is
    marked abandoned once its lease runs out."""
    status, error = failure_of(run_id, exc, retried_s)
    try:
        retrying(
            lambda: finish_run(run_id, clock(), status, 0, error),
            f"recording run {run_id} {status}",
            max(retried_s, RECORD_RETRY_S),
        )
    except Exception as recording:
        log.error("run %s %s, and its row could not say so: %s", run_id, status, recording)
    return status, error


RECORD_RETRY_S = 120  # a failed run's row outlasts a lock longer than its own retries


def failure_of(run_id: int, exc: Exception, retried_s: float) -> tuple[str, str]:
    if isinstance(exc, RunCancelled):
        log.warning("run %s cancelled before publishing", run_id, extra={"run_id": run_id})
        return "cancelled", str(exc)
    error = f"{type(exc).__name__}: {exc}"
    if is_busy(exc):
        error = f"the write lock stayed taken through {retried_s:g} s of retries: {error}"
    if storage_fault(exc) or is_busy(exc):  # the cause says it all; no traceback
        log.error("run %s failed: %s", run_id, error, extra={"run_id": run_id})
    else:
        log.exception("run %s failed", run_id, exc_info=exc, extra={"run_id": run_id})
    return "failed", error
