"""The clock process: fires the nightly job on a cron schedule, and catches up on start."""

import logging
import signal
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from core.db import database
from core.models import Run
from core.settings import Settings
from scheduler.job import run_job

log = logging.getLogger("bandit.clock")
SCHEDULED_TRIGGERS = ("nightly", "catch_up")


def last_fire_time(now: datetime, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The most recent scheduled time at or before now, as an aware datetime."""
    local = now.astimezone(tz)
    fire = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
    if fire > local:
        fire = datetime.combine(local.date() - timedelta(days=1), time(hour, minute), tzinfo=tz)
    return fire


def effective_date_for(fire: datetime, tz: ZoneInfo) -> date:
    return fire.astimezone(tz).date() + timedelta(days=1)


def missed_run(
    last_success: datetime | None, now: datetime, hour: int, minute: int, tz: ZoneInfo
) -> datetime | None:
    """The scheduled time that has no successful run since it, or None if none was missed."""
    fire = last_fire_time(now, hour, minute, tz)
    if last_success is not None and last_success >= fire:
        return None
    return fire


def last_scheduled_success() -> datetime | None:
    """Start time (aware, UTC) of the latest successful nightly or catch-up run."""
    with database.connection_context():
        run = (
            Run.select()
            .where(Run.trigger.in_(SCHEDULED_TRIGGERS) & (Run.status == "success"))
            .order_by(Run.started_at.desc())
            .first()
        )
    return run.started_at.replace(tzinfo=UTC) if run else None


def nightly(settings: Settings) -> None:
    now = datetime.now(UTC)
    fire = last_fire_time(now, *settings.run_hour_minute, settings.tz)
    run_job(now, settings, "nightly", effective_date=effective_date_for(fire, settings.tz))


def catch_up(settings: Settings, now: datetime) -> bool:
    """Run the missed scheduled job, if any; return whether one ran."""
    fire = missed_run(last_scheduled_success(), now, *settings.run_hour_minute, settings.tz)
    if fire is None:
        return False
    log.warning("the run due at %s was missed; running it now", fire.isoformat())
    run_job(now, settings, "catch_up", effective_date=effective_date_for(fire, settings.tz))
    return True


def build_scheduler(settings: Settings) -> BlockingScheduler:
    hour, minute = settings.run_hour_minute
    scheduler = BlockingScheduler(timezone=settings.tz)
    scheduler.add_job(
        nightly,
        CronTrigger(hour=hour, minute=minute, timezone=settings.tz),
        args=[settings],
        id="nightly",
        replace_existing=True,
        # A run delayed by a busy or paused process should still happen, once.
        misfire_grace_time=settings.schedule.misfire_grace_seconds,
        coalesce=True,
        max_instances=1,
    )
    return scheduler


def run_clock(settings: Settings) -> None:
    if settings.schedule.catch_up:
        catch_up(settings, datetime.now(UTC))
    scheduler = build_scheduler(settings)

    def stop(signum, frame):
        log.info("signal %s: stopping the clock after the current run", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    log.info("clock started: nightly at %s %s", settings.schedule.time, settings.schedule.timezone)
    scheduler.start()
