"""The clock: schedule arithmetic and catch-up, with fixed datetimes passed as `now`."""

import dataclasses
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.schema import Run
from scheduler import clock
from scheduler.clock import (
    build_scheduler,
    catch_up,
    catch_up_until_current,
    last_fire_time,
    last_success,
    missed_run,
    nightly,
)
from tests.helpers import load_contract as seed_data
from tests.helpers import utc
from tests.processes import wait_for

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    "now,expected",
    [
        (utc(2025, 12, 22, 23, 50), utc(2025, 12, 22, 23, 50)),
        (utc(2025, 12, 22, 23, 49), utc(2025, 12, 21, 23, 50)),
        (utc(2025, 12, 23, 9, 0), utc(2025, 12, 22, 23, 50)),
    ],
)
def test_last_fire_time(now, expected):
    assert last_fire_time(now, 23, 50, UTC_ZONE) == expected


def test_last_fire_time_in_a_zone_across_dst():
    # Berlin moved to summer time on 2025-03-30; 23:50 local is 21:50 UTC after it.
    fire = last_fire_time(utc(2025, 3, 31, 6, 0), 23, 50, BERLIN)
    assert fire.astimezone(UTC) == utc(2025, 3, 30, 21, 50)


def test_missed_run_when_nothing_ran_since_the_last_fire():
    now = utc(2025, 12, 23, 9, 0)
    assert missed_run(utc(2025, 12, 21, 23, 50, 5), now, 23, 50, UTC_ZONE) == utc(
        2025, 12, 22, 23, 50
    )
    assert missed_run(None, now, 23, 50, UTC_ZONE) == utc(2025, 12, 22, 23, 50)


def test_no_missed_run_when_the_last_fire_succeeded():
    assert (
        missed_run(utc(2025, 12, 22, 23, 50, 1), utc(2025, 12, 23, 9, 0), 23, 50, UTC_ZONE) is None
    )


FIRE = utc(2025, 12, 22, 23, 50)  # the default schedule's fire time on the 22nd
MORNING = utc(2025, 12, 23, 9, 0)  # the clock starts here; the last fire time is FIRE


def naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def record_success(trigger, started, finished=None):
    Run.create(
        trigger=trigger,
        effective_date=date(2025, 12, 22),
        status="success",
        started_at=naive(started),
        finished_at=naive(finished or started),
    )


def latest_run() -> Run:
    return Run.select().order_by(Run.id.desc()).first()


def test_clock_catches_up_a_missed_night_on_start(db, settings):
    seed_data()
    record_success("nightly", utc(2025, 12, 21, 23, 50, 2))
    assert catch_up(settings, MORNING) is True
    run = latest_run()
    assert (run.trigger, run.status, run.started_at) == ("catch_up", "success", naive(MORNING))
    # The missed run was for the 23rd; it is computed for that day, not the 24th.
    assert run.effective_date == date(2025, 12, 23)
    assert catch_up(settings, MORNING) is False


def test_manual_runs_do_not_count_as_the_nightly(db, settings):
    seed_data()
    record_success("nightly", utc(2025, 12, 21, 23, 50, 2))
    record_success("manual", utc(2025, 12, 23, 8, 0))
    assert catch_up(settings, MORNING) is True


def test_no_catch_up_after_a_successful_night(db, settings):
    record_success("nightly", utc(2025, 12, 22, 23, 50, 2))
    assert catch_up(settings, MORNING) is False
    assert Run.select().count() == 1


def test_failed_night_is_caught_up(db, settings):
    seed_data()
    Run.create(
        trigger="nightly",
        effective_date=date(2025, 12, 23),
        status="failed",
        started_at=naive(FIRE),
    )
    assert catch_up(settings, MORNING) is True


def test_catch_up_goes_by_the_latest_of_several_successful_nights(db, settings):
    # Inserted out of order, so that neither the first row nor the oldest is the latest.
    for day in (21, 22, 19, 20):
        record_success("nightly" if day % 2 else "catch_up", utc(2025, 12, day, 23, 50, 2))
    record_success("manual", utc(2025, 12, 23, 8, 0))
    assert last_success() == utc(2025, 12, 22, 23, 50, 2)
    assert catch_up(settings, MORNING) is False
    assert Run.select().count() == 5


def test_a_success_exactly_at_the_fire_time_does_that_night(db, settings):
    record_success("nightly", FIRE)
    assert catch_up(settings, MORNING) is False


def test_a_success_just_before_the_fire_time_leaves_that_night_missed(db, settings):
    seed_data()
    record_success("nightly", FIRE - timedelta(microseconds=1))
    assert catch_up(settings, MORNING) is True


def test_a_nightly_run_is_stamped_with_the_fire_time_it_was_given(db, settings):
    seed_data()
    nightly(settings, now=FIRE)
    run = Run.get()
    assert (run.trigger, run.status, run.started_at) == ("nightly", "success", naive(FIRE))
    assert run.scheduled_for == naive(FIRE) and run.finished_at >= naive(FIRE)
    assert catch_up(settings, MORNING) is False


def test_a_night_whose_run_ended_after_the_next_fire_time_leaves_that_time_missed(db, settings):
    # Started for the 22nd's night at 23:49 on the 23rd, it ended at 23:51: after the
    # 23rd's 23:50, which it did not do.
    seed_data()
    record_success("catch_up", utc(2025, 12, 23, 23, 49), finished=utc(2025, 12, 23, 23, 51))
    assert catch_up(settings, utc(2025, 12, 23, 23, 52)) is True
    assert latest_run().effective_date == date(2025, 12, 24)


def test_healthz_reports_the_last_success_the_clock_goes_by(db, client, settings):
    for day in (21, 22, 20):
        record_success("nightly", utc(2025, 12, day, 23, 50, 2), utc(2025, 12, day, 23, 59))
    record_success("manual", utc(2025, 12, 23, 8, 0))
    reported = client.get("/healthz").json()["last_nightly_success"]
    assert datetime.fromisoformat(reported) == last_success() == utc(2025, 12, 22, 23, 50, 2)


def test_scheduler_job_is_configured_for_a_single_coalesced_run(settings):
    scheduler = build_scheduler(settings)
    job = scheduler.get_job("nightly")
    assert job.misfire_grace_time == settings.schedule.misfire_grace_seconds
    assert job.coalesce is True
    assert job.max_instances == 1
    assert str(job.trigger) == "cron[hour='23', minute='50']"


def test_scheduler_next_fire_is_the_configured_local_time(settings):
    berlin = dataclasses.replace(settings.schedule, timezone="Europe/Berlin", time="06:15")
    scheduler = build_scheduler(dataclasses.replace(settings, schedule=berlin))
    trigger = scheduler.get_job("nightly").trigger
    fire = trigger.get_next_fire_time(None, datetime(2025, 12, 22, 12, 0, tzinfo=BERLIN))
    assert fire == datetime(2025, 12, 23, 6, 15, tzinfo=BERLIN)


def clock_reading(*readings: datetime):
    """A clock that gives each reading in turn, then the last one for ever."""
    remaining = list(readings)
    return lambda: remaining.pop(0) if len(remaining) > 1 else remaining[0]


def test_a_catch_up_that_outlasts_the_next_scheduled_time_is_followed_by_that_run(db, settings):
    seed_data()
    # The clock reads 23:49 when the first catch-up starts, and 23:51, after the next
    # scheduled time, once it has ended.
    clock = clock_reading(utc(2025, 12, 23, 23, 49), utc(2025, 12, 23, 23, 51))
    assert catch_up_until_current(settings, clock=clock) == 2
    runs = list(Run.select().order_by(Run.id))
    assert [(r.trigger, r.status) for r in runs] == [("catch_up", "success")] * 2
    assert [r.effective_date for r in runs] == [date(2025, 12, 23), date(2025, 12, 24)]
    assert [r.started_at for r in runs] == [
        datetime(2025, 12, 23, 23, 49),
        datetime(2025, 12, 23, 23, 51),
    ]


def test_the_running_clock_runs_a_time_it_let_pass_without_a_restart(db, settings, monkeypatch):
    """The clock's own scheduler, started as run_clock starts it, on the real wall clock:
    its clock reads just before FIRE when it starts, the cron job lets FIRE pass (removed,
    as a process paused through it would), and the periodic check (every CHECK_EVERY_S,
    shortened) runs that time while the clock keeps running."""
    seed_data()
    shift = FIRE - timedelta(seconds=0.3) - datetime.now(UTC)
    monkeypatch.setattr(clock, "real_now", lambda: datetime.now(UTC) + shift)
    monkeypatch.setattr(clock, "CHECK_EVERY_S", 0.2)
    scheduler = build_scheduler(settings)
    scheduler.remove_job("nightly")
    scheduler.start()
    try:
        run = wait_for(caught_up, timeout=30, what="the periodic check's run")
        assert scheduler.running
    finally:
        scheduler.shutdown(wait=True)
    assert (run.trigger, run.status, run.scheduled_for) == ("catch_up", "success", naive(FIRE))
    assert run.started_at >= naive(FIRE)  # after FIRE passed, and the clock started before it
    assert Run.select().count() == 1  # once: the next checks found the time's row


def caught_up() -> Run | None:
    run = latest_run()
    return run if run is not None and run.status != "running" else None
