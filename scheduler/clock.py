"""The clock process: fires the nightly job on a cron schedule, and catches up on start.

SIGTERM or SIGINT only sets an event. A run in progress sees it before its next
experiment and ends 'cancelled' without publishing (a publish already under way
finishes: it is one short transaction); the main thread, which waits on the event, then
shuts the scheduler down and waits for that run to record its outcome. The handler does
nothing else, so a signal is safe wherever it lands, including during the catch-up run
on start, before the scheduler is running.
"""

import logging
import signal
import threading
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from core.db import database
from core.policy import next_effective_date
from core.settings import Settings
from scheduler.job import RunSummary, run_job
from scheduler.runs import Clock, last_scheduled_success, real_now, scheduled_time_tried

log = logging.getLogger("bandit.clock")


def last_fire_time(now: datetime, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The most recent scheduled time at or before now, as an aware datetime."""
    local = now.astimezone(tz)
    fire = datetime.combine(local.date(), time(hour, minute), tzinfo=tz)
    if fire > local:
        fire = datetime.combine(local.date() - timedelta(days=1), time(hour, minute), tzinfo=tz)
    return fire


def missed_run(
    last_success: datetime | None, now: datetime, hour: int, minute: int, tz: ZoneInfo
) -> datetime | None:
    """The scheduled time that has no successful run since it, or None if none was missed."""
    fire = last_fire_time(now, hour, minute, tz)
    if last_success is not None and last_success >= fire:
        return None
    return fire


def last_success() -> datetime | None:
    with database.connection_context():
        return last_scheduled_success()


def run_scheduled(settings: Settings, trigger: str, fire: datetime, now: datetime, stop=None):
    """Run the job for one scheduled time, unless another process holds or did that time.
    A run that could not even start (the lock stayed taken through its retries, the file
    is gone) is logged here and left to the periodic check: the clock keeps going."""
    try:
        return run_job(
            now,
            settings,
            trigger,
            effective_date=next_effective_date(fire, settings.tz),
            scheduled_for=fire,
            should_stop=stop.is_set if stop is not None else None,
        )
    except Exception as exc:
        log.error("the run due at %s could not start: %s: %s", fire, type(exc).__name__, exc)
        return None


CHECK_EVERY_S = 60


def unattempted(fire: datetime, now: datetime, started: datetime) -> bool:
    """Whether a scheduled time came while this clock ran, long enough ago for the cron
    job to have started it, and no run row holds it (what happened to it is not known)."""
    if fire < started or (now - fire).total_seconds() < CHECK_EVERY_S:
        return False
    with database.connection_context():
        return not scheduled_time_tried(fire)


def check_missed(
    settings: Settings, started: datetime, stop=None, now: datetime | None = None
) -> RunSummary | None:
    """Run a scheduled time this clock let pass without a row (a lock through every retry,
    a paused process past the misfire grace); the periodic job, every CHECK_EVERY_S."""
    now = now or real_now()
    fire = last_fire_time(now, *settings.run_hour_minute, settings.tz)
    if not unattempted(fire, now, started):
        return None
    log.warning("the run due at %s never started; running it now", fire.isoformat())
    return run_scheduled(settings, "catch_up", fire, now, stop)


def nightly(
    settings: Settings, stop: threading.Event | None = None, now: datetime | None = None
) -> None:
    now = now or real_now()
    fire = last_fire_time(now, *settings.run_hour_minute, settings.tz)
    run_scheduled(settings, "nightly", fire, now, stop)


def catch_up(settings: Settings, now: datetime, stop: threading.Event | None = None) -> bool:
    """Run the missed scheduled job, if any; return whether this process ran it."""
    fire = missed_run(last_success(), now, *settings.run_hour_minute, settings.tz)
    return fire is not None and run_missed(settings, fire, now, stop)


def run_missed(settings: Settings, fire: datetime, now: datetime, stop=None) -> bool:
    log.warning("the run due at %s was missed; running it now", fire.isoformat())
    return run_scheduled(settings, "catch_up", fire, now, stop) is not None


def catch_up_until_current(
    settings: Settings, stop: threading.Event | None = None, clock: Clock = real_now
) -> int:
    """Catch up until no scheduled time is missed at clock(); return how many runs ran.

    A catch-up can outlast the next scheduled time (a long run started just before it).
    APScheduler starts only afterwards and would never fire that time, so look again. A
    time whose run did not succeed is not retried here: its failure is in the runs table.
    """
    handled, ran = set(), 0
    while True:
        now = clock()
        fire = missed_run(last_success(), now, *settings.run_hour_minute, settings.tz)
        if fire is None or fire in handled:
            return ran
        handled.add(fire)
        ran += run_missed(settings, fire, now, stop)  # a stop meanwhile ends it 'cancelled'
        if stop is not None and stop.is_set():
            return ran


def build_scheduler(settings: Settings, stop: threading.Event | None = None) -> BackgroundScheduler:
    hour, minute = settings.run_hour_minute
    scheduler = BackgroundScheduler(timezone=settings.tz)
    scheduler.add_job(
        nightly,
        CronTrigger(hour=hour, minute=minute, timezone=settings.tz),
        args=[settings, stop],
        id="nightly",
        replace_existing=True,
        # A run delayed by a busy or paused process should still happen, once.
        misfire_grace_time=settings.schedule.misfire_grace_seconds,
        coalesce=True,
        max_instances=1,
    )
    scheduler.add_job(
        check_missed,
        IntervalTrigger(seconds=CHECK_EVERY_S),
        args=[settings, real_now(), stop],
        id="check_missed",
        coalesce=True,
        max_instances=1,
    )
    return scheduler


def stop_on_signals(stop: threading.Event) -> None:
    def handle(signum, frame):
        log.info("signal %s: stopping; a run in progress is cancelled before publishing", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_clock(settings: Settings, stop: threading.Event | None = None) -> None:
    stop = stop or threading.Event()
    stop_on_signals(stop)
    if settings.schedule.catch_up:
        catch_up_until_current(settings, stop)
    if stop.is_set():
        log.info("clock stopped during the catch-up run")
        return
    scheduler = build_scheduler(settings, stop)
    scheduler.start()
    when = settings.schedule.time, settings.schedule.timezone
    next_run = scheduler.get_job("nightly").next_run_time.isoformat()
    log.info("clock started: nightly at %s %s, next run at %s", *when, next_run)
    # Wake now and then rather than trusting one long wait to be interrupted by a signal.
    while not stop.wait(1.0):
        pass
    scheduler.shutdown(wait=True)
    log.info("clock stopped")
