"""The clock: schedule arithmetic as pure functions, catch-up on start with freezegun."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from core.schema import Run
from scheduler.clock import build_scheduler, catch_up, last_fire_time, missed_run
from tests.helpers import load_contract as seed_data
from tests.helpers import utc

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


def record_success(trigger, started):
    Run.create(
        trigger=trigger,
        effective_date=date(2025, 12, 22),
        status="success",
        started_at=started,
        finished_at=started,
    )


@freeze_time("2025-12-23 09:00:00")
def test_clock_catches_up_a_missed_night_on_start(db, settings):
    seed_data()
    record_success("nightly", datetime(2025, 12, 21, 23, 50, 2))
    assert catch_up(settings, datetime.now(UTC)) is True
    run = Run.select().order_by(Run.id.desc()).first()
    assert (run.trigger, run.status) == ("catch_up", "success")
    # The missed run was for the 23rd; it is computed for that day, not the 24th.
    assert run.effective_date == date(2025, 12, 23)
    assert catch_up(settings, datetime.now(UTC)) is False


@freeze_time("2025-12-23 09:00:00")
def test_manual_runs_do_not_count_as_the_nightly(db, settings):
    seed_data()
    record_success("nightly", datetime(2025, 12, 21, 23, 50, 2))
    record_success("manual", datetime(2025, 12, 23, 8, 0))
    assert catch_up(settings, datetime.now(UTC)) is True


@freeze_time("2025-12-23 09:00:00")
def test_no_catch_up_after_a_successful_night(db, settings):
    record_success("nightly", datetime(2025, 12, 22, 23, 50, 2))
    assert catch_up(settings, datetime.now(UTC)) is False
    assert Run.select().count() == 1


@freeze_time("2025-12-23 09:00:00")
def test_failed_night_is_caught_up(db, settings):
    seed_data()
    Run.create(
        trigger="nightly",
        effective_date=date(2025, 12, 23),
        status="failed",
        started_at=datetime(2025, 12, 22, 23, 50, 2),
    )
    assert catch_up(settings, datetime.now(UTC)) is True


def test_scheduler_job_is_configured_for_a_single_coalesced_run(settings):
    scheduler = build_scheduler(settings)
    job = scheduler.get_job("nightly")
    assert job.misfire_grace_time == settings.schedule.misfire_grace_seconds
    assert job.coalesce is True
    assert job.max_instances == 1
    assert str(job.trigger) == "cron[hour='23', minute='50']"


def test_scheduler_next_fire_is_the_configured_local_time(settings):
    import dataclasses

    berlin = dataclasses.replace(settings.schedule, timezone="Europe/Berlin", time="06:15")
    scheduler = build_scheduler(dataclasses.replace(settings, schedule=berlin))
    trigger = scheduler.get_job("nightly").trigger
    fire = trigger.get_next_fire_time(None, datetime(2025, 12, 22, 12, 0, tzinfo=BERLIN))
    assert fire == datetime(2025, 12, 23, 6, 15, tzinfo=BERLIN)


def test_a_catch_up_that_outlasts_the_next_scheduled_time_is_followed_by_that_run(
    db, settings, monkeypatch
):
    from datetime import timedelta

    from scheduler import clock

    seed_data()
    with freeze_time("2025-12-23 23:49:00") as frozen:
        original = clock.run_scheduled

        def slow_run(*args, **kwargs):
            result = original(*args, **kwargs)
            frozen.tick(timedelta(minutes=2))  # the run ends after the next 23:50
            return result

        monkeypatch.setattr(clock, "run_scheduled", slow_run)
        assert clock.catch_up_until_current(settings) == 2
    runs = list(Run.select().order_by(Run.id))
    assert [(r.trigger, r.status) for r in runs] == [("catch_up", "success")] * 2
    assert [r.effective_date for r in runs] == [date(2025, 12, 23), date(2025, 12, 24)]
