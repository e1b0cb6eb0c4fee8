"""POST /recompute's run, in a thread of its own: the request waits for it up to
server.recompute_wait_seconds, and a longer run goes on after the answer (202).

The thread is not a daemon, so a web process asked to stop finishes the run (publishing
it or recording its failure) before it exits, instead of leaving a 'running' row for the
next run to expire. It runs in a copy of the request's context: its log lines carry the
request id and its audit line the API key's name.
"""

import contextvars
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as WaitTimedOut
from datetime import UTC, datetime

from api.schemas import RunOut
from core.logs import audit
from core.settings import Settings
from scheduler.job import RunSummary, run_job

log = logging.getLogger("bandit.api")


class Recompute:
    """One manual run: its id once its row exists, and its summary once it ends."""

    def __init__(self):
        self.run_id: int | None = None
        self.started = threading.Event()
        self.summary: Future[RunSummary] = Future()

    def begun(self, run_id: int) -> None:
        self.run_id = run_id
        self.started.set()

    def wait(self, seconds: float) -> RunSummary | None:
        """The summary if the run ends within seconds, else None (its id is then known).
        Raises what the run raised before it had a row (a busy database, for one)."""
        self.started.wait()
        try:
            return self.summary.result(timeout=seconds)
        except WaitTimedOut:
            return None


def after_run(finished: Callable, summary: RunSummary) -> None:
    """Before the answer, so that a caller who reads the split next gets the new one; the
    run has ended either way, so a failure here is logged, not made the run's."""
    try:
        finished(summary)
    except Exception:
        log.exception("after run %s", summary.run_id)


def work(job: Recompute, settings: Settings, experiment_id, finished: Callable) -> None:
    try:
        now = datetime.now(UTC)
        summary = run_job(now, settings, "manual", experiment_id=experiment_id, on_start=job.begun)
        after_run(finished, summary)
        job.summary.set_result(summary)
    except BaseException as exc:  # handed to the waiting request, which answers for it
        job.summary.set_exception(exc)
    finally:
        job.started.set()


def launch(settings: Settings, experiment_id: str | None, finished: Callable) -> Recompute:
    """Start the run; finished(summary) is called in its thread when it ends."""
    job = Recompute()
    context = contextvars.copy_context()
    thread = threading.Thread(
        target=context.run, args=(work, job, settings, experiment_id, finished), name="recompute"
    )
    thread.start()
    return job


LONG_RUN = {
    202: {
        "model": RunOut,
        "description": "the run goes on past server.recompute_wait_seconds: follow Location",
        "headers": {"Location": {"description": "/runs/{run_id}", "schema": {"type": "string"}}},
    }
}


def recompute_finished(cache, experiment_id: str | None):
    """After a manual run: serve its split at once, and write its audit line."""

    def finished(summary: RunSummary) -> None:
        cache.refresh()
        audit(
            "recompute",
            experiment_id or "all experiments",
            {"status": ("running", summary.status)},
            run_id=summary.run_id,
            experiments_processed=summary.experiments_processed,
        )

    return finished
