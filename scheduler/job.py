"""The nightly job: aggregate -> sample -> publish, recorded in the runs table.

The same code runs from the clock, `python -m scheduler run-once` and POST /recompute.
`now` is always a parameter so tests can pass a fixed time.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.db import database, write_transaction
from core.models import Run, utcnow
from core.settings import Settings
from scheduler.allocate import allocate_all
from scheduler.publish import publish_allocations

log = logging.getLogger("bandit.job")


@dataclass(frozen=True)
class RunSummary:
    run_id: int
    trigger: str
    effective_date: date
    status: str
    experiments_processed: int
    error: str | None = None


def next_effective_date(now: datetime, tz: ZoneInfo) -> date:
    """A run on local day D writes the allocation for D + 1."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(tz).date() + timedelta(days=1)


def start_run(trigger: str, effective_date: date, experiment_id: str | None) -> int:
    with write_transaction():
        run = Run.create(
            trigger=trigger, effective_date=effective_date, experiment_filter=experiment_id
        )
    return run.id


def finish_run(run_id: int, status: str, processed: int, error: str | None = None) -> None:
    with write_transaction():
        (
            Run.update(
                status=status, experiments_processed=processed, error=error, finished_at=utcnow()
            )
            .where(Run.id == run_id)
            .execute()
        )


def run_job(
    now: datetime,
    settings: Settings,
    trigger: str = "manual",
    experiment_id: str | None = None,
    effective_date: date | None = None,
) -> RunSummary:
    """Compute and publish allocations for every experiment (or one); never half-publishes."""
    effective_date = effective_date or next_effective_date(now, settings.tz)
    with database.connection_context():
        run_id = start_run(trigger, effective_date, experiment_id)
        try:
            results = allocate_all(effective_date, settings, experiment_id)
            publish_allocations(run_id, effective_date, results)
        except Exception as exc:
            log.exception("run %s failed", run_id)
            finish_run(run_id, "failed", 0, f"{type(exc).__name__}: {exc}")
            return RunSummary(run_id, trigger, effective_date, "failed", 0, str(exc))
        finish_run(run_id, "success", len(results))
    log.info("run %s published %d experiments for %s", run_id, len(results), effective_date)
    return RunSummary(run_id, trigger, effective_date, "success", len(results))
