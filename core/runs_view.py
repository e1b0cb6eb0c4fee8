"""Run history as operators read it: GET /runs, GET /runs/{id}, the staleness /healthz
reports and the run figures /metrics exports. Call each with a connection open."""

import json
from datetime import datetime, timedelta

from peewee import fn

from core.db import as_utc, is_busy, lock_wait, write_transaction
from core.schema import Counter, Run

SCHEDULED_TRIGGERS = ("nightly", "catch_up")
BULK_ROWS_COUNTER = "rows_loaded"  # the counter row bulk loads add their rows to
# A nightly run is due every 24 hours; half a day more leaves room for a slow or retried one.
STALE_AFTER = timedelta(hours=36)


def aware(stored: datetime | None) -> datetime | None:
    return as_utc(stored) if stored else None


def run_view(run: Run) -> dict:
    finished = aware(run.finished_at)
    return {
        "run_id": run.id,
        "trigger": run.trigger,
        "effective_date": run.effective_date,
        "experiment_id": run.experiment_filter,
        "scheduled_for": aware(run.scheduled_for),
        "started_at": aware(run.started_at),
        "finished_at": finished,
        "duration_seconds": (
            (run.finished_at - run.started_at).total_seconds() if finished else None
        ),
        "status": run.status,
        "experiments_processed": run.experiments_processed,
        "phase_seconds": json.loads(run.phase_seconds) if run.phase_seconds else None,
        "error": run.error,
    }


def list_runs(limit: int, offset: int) -> list[dict]:
    """Newest first."""
    runs = Run.select().order_by(Run.id.desc()).limit(limit).offset(offset)
    return [run_view(run) for run in runs]


def find_run(run_id: int) -> dict | None:
    run = Run.get_or_none(Run.id == run_id)
    return run_view(run) if run else None


def latest_scheduled_run() -> dict | None:
    """The newest nightly or catch-up run that has ended (a running one has no verdict)."""
    run = (
        Run.select()
        .where(Run.trigger.in_(SCHEDULED_TRIGGERS) & (Run.status != "running"))
        .order_by(Run.started_at.desc(), Run.id.desc())
        .first()
    )
    return run_view(run) if run else None


def run_problems(last: dict | None, last_success: datetime | None, now: datetime) -> list[str]:
    """Why the nightly runs are not healthy, in words an operator can act on (pure)."""
    problems = []
    if last is not None and last["status"] != "success":
        problems.append(
            f"the last scheduled run (run {last['run_id']}, {last['trigger']}, started"
            f" {last['started_at']:%Y-%m-%d %H:%M} UTC) ended {last['status']}: {last['error']}"
        )
    if last_success is not None and now - last_success > STALE_AFTER:
        hours = (now - last_success).total_seconds() / 3600
        problems.append(
            f"the last successful scheduled run started {hours:.0f} hours ago"
            f" ({last_success:%Y-%m-%d %H:%M} UTC): a nightly run was missed"
        )
    return problems


def runs_by_outcome() -> list[tuple[str, str, int]]:
    """(trigger, status, count) over the whole run table."""
    query = Run.select(Run.trigger, Run.status, fn.COUNT(Run.id)).group_by(Run.trigger, Run.status)
    return list(query.tuples())


def latest_finished_run() -> dict | None:
    run = Run.select().where(Run.finished_at.is_null(False)).order_by(Run.id.desc()).first()
    return run_view(run) if run else None


def probe_write(busy_timeout_ms: int) -> None:
    """Take the write lock and let it go, writing nothing: raises when the file cannot be
    written (read-only, disk gone). A lock held by a publish or a bulk load past the short
    timeout is a busy database, which is writable: that is not an error here."""
    lock_wait(busy_timeout_ms)
    try:
        with write_transaction():
            pass
    except Exception as exc:
        if not is_busy(exc):
            raise


def add_to_counter(name: str, amount: int) -> None:
    """Bump a named counter by amount, inside the caller's write transaction."""
    (
        Counter.insert(name=name, value=amount)
        .on_conflict(conflict_target=[Counter.name], update={Counter.value: Counter.value + amount})
        .execute()
    )


def counter_value(name: str) -> int:
    return Counter.select(Counter.value).where(Counter.name == name).scalar() or 0
