"""On PostgreSQL a web process learns of a change by NOTIFY at its commit, not by its poll:
with a poll a minute apart, a publish made elsewhere is served within a second."""

import dataclasses
import threading
import time

from fastapi.testclient import TestClient

from api.app import create_app
from api.cache import fallback_s
from core.db import ChangeListener, database
from scheduler.job import run_job
from tests.helpers import NOW, Other, load_contract


def slow_polling(settings):
    """A poll interval of a minute: only a notification can make a refresh come sooner."""
    return dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, refresh_ms=60_000)
    )


def served_run(client) -> int | None:
    answer = client.get("/allocation", params={"experiment_id": "ctr_test"})
    return answer.json().get("run_id") if answer.status_code == 200 else None


def test_a_postgres_publish_is_served_at_its_notification_not_the_next_poll(settings):
    with TestClient(create_app(slow_polling(settings))) as client:
        assert client.app.state.cache.loaded.wait(10)
        with database.connection_context():
            load_contract()
            summary = run_job(NOW, settings, "manual")  # as another process's publish would
        deadline = time.monotonic() + 1.0
        while served_run(client) != summary.run_id and time.monotonic() < deadline:
            time.sleep(0.02)
        assert served_run(client) == summary.run_id


def test_a_postgres_listener_catches_up_after_its_connection_is_lost(settings):
    # A notification sent while nothing listened is not replayed: the listener that comes
    # back says "refresh now", and "version > last seen" finds what was missed.
    open_app = create_app(slow_polling(settings))
    with TestClient(open_app) as client:
        assert client.app.state.cache.loaded.wait(10)
        with Other(settings) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'bandit-api cache'"
            )
        with database.connection_context():
            load_contract()
            summary = run_job(NOW, settings, "manual")
        deadline = time.monotonic() + 10
        while served_run(client) != summary.run_id and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served_run(client) == summary.run_id


def test_the_postgres_fallback_poll_is_ten_intervals_at_most_five_seconds():
    assert fallback_s(0.25) == 2.5
    assert fallback_s(2.0) == 5.0
    assert fallback_s(60.0) == 60.0  # never more often than asked


def test_on_sqlite_the_listener_only_waits_the_poll_interval(db):
    listener = ChangeListener(0.05, 5.0)
    started = time.monotonic()
    listener.wait(threading.Event())
    assert 0.04 < time.monotonic() - started < 1.0
