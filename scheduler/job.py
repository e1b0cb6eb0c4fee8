"""The nightly job: aggregate -> sample -> publish, recorded in the runs table.

The same code runs from the clock, `python -m scheduler run-once` and POST /recompute.
`now` is always a parameter so tests can pass a fixed time.
"""

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.db import database
from core.settings import Settings
from scheduler.allocate import allocate_all
from scheduler.publish import publish_allocations
from scheduler.runs import RunCancelled, finish_run, lease_kept, raise_if_stopped, start_run

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


def run_job(
    now: datetime,
    settings: Settings,
    trigger: str = "manual",
    experiment_id: str | None = None,
    effective_date: date | None = None,
    scheduled_for: datetime | None = None,
    should_stop=None,
) -> RunSummary | None:
    """Compute and publish allocations for every experiment (or one); never half-publishes.

    A scheduled run (scheduled_for set) returns None without running when another process
    holds or has done that scheduled time. should_stop() is asked before each experiment
    and before publishing; once it is true the run ends 'cancelled' with nothing written.
    """
    effective_date = effective_date or next_effective_date(now, settings.tz)
    lease = settings.schedule.lease_seconds
    with database.connection_context():
        run_id = start_run(trigger, effective_date, experiment_id, lease, scheduled_for)
        if run_id is None:
            log.info("the run scheduled for %s is another process's; skipping", scheduled_for)
            return None
        try:
            with lease_kept(run_id, lease):
                results = allocate_all(effective_date, settings, experiment_id, should_stop)
                raise_if_stopped(should_stop)
                publish_allocations(run_id, effective_date, results)
        except RunCancelled as exc:
            log.warning("run %s cancelled before publishing", run_id)
            finish_run(run_id, "cancelled", 0, str(exc))
            return RunSummary(run_id, trigger, effective_date, "cancelled", 0, str(exc))
        except Exception as exc:
            log.exception("run %s failed", run_id)
            finish_run(run_id, "failed", 0, f"{type(exc).__name__}: {exc}")
            return RunSummary(run_id, trigger, effective_date, "failed", 0, str(exc))
        finish_run(run_id, "success", len(results))
    log.info("run %s published %d experiments for %s", run_id, len(results), effective_date)
    return RunSummary(run_id, trigger, effective_date, "success", len(results))
