"""What operators read: run history, /livez, /readyz, /healthz's verdict, long recomputes."""

import dataclasses
import sqlite3
from contextlib import closing
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import database
from core.migrations import open_database
from core.runs_view import run_problems
from core.schema import Run
from tests.helpers import CONTRACT_POST, NOW, run_at
from tests.processes import wait_for


def failed_nightly(started: datetime, error="ZeroDivisionError: boom") -> None:
    with database.connection_context():
        Run.create(
            trigger="nightly",
            effective_date=date(2025, 12, 23),
            started_at=started.replace(tzinfo=None),
            finished_at=started.replace(tzinfo=None),
            status="failed",
            error=error,
        )


def recent() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def test_runs_are_listed_newest_first_and_paged(client, settings):
    client.post("/data", json=CONTRACT_POST)
    ids = [run_at(NOW + timedelta(minutes=n), settings).run_id for n in range(3)]
    first = client.get("/runs?limit=2").json()
    assert [r["run_id"] for r in first] == ids[::-1][:2]
    assert [r["run_id"] for r in client.get("/runs?limit=2&offset=2").json()] == ids[:1]


def test_a_run_shows_its_trigger_times_status_and_phases(client, settings):
    client.post("/data", json=CONTRACT_POST)
    summary = run_at(NOW, settings, scheduled_for=NOW)
    run = client.get(f"/runs/{summary.run_id}").json()
    assert (run["trigger"], run["status"]) == ("nightly", "success")
    assert run["experiments_processed"] == 1
    assert run["started_at"] == "2025-12-22T23:50:00Z"
    assert run["scheduled_for"] == "2025-12-22T23:50:00Z"
    assert run["finished_at"].startswith("2025-12-22T23:50:") and run["duration_seconds"] >= 0
    assert set(run["phase_seconds"]) == {"compute", "staging", "publish_lock"}
    assert run["error"] is None and run["effective_date"] == "2025-12-23"


def test_an_unknown_run_is_a_404_in_the_error_shape(client):
    response = client.get("/runs/12345")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "unknown run 12345"}


def test_livez_answers_without_the_database(client, monkeypatch):
    monkeypatch.setattr(database, "execute_sql", lambda *a, **k: (_ for _ in ()).throw(OSError()))
    assert client.get("/livez").json() == {"status": "alive"}


def test_readyz_is_ready_with_a_writable_database_and_a_loaded_cache(client):
    assert client.app.state.cache.loaded.wait(10)  # the first load runs beside the server
    assert client.get("/readyz").json() == {"status": "ready", "problems": []}


def test_readyz_is_ready_while_another_process_holds_the_write_lock(client, settings):
    with closing(sqlite3.connect(settings.database.path, timeout=1)) as other:
        other.execute("BEGIN IMMEDIATE")
        response = client.get("/readyz")
        other.rollback()
    assert response.status_code == 200


def test_readyz_is_503_when_the_database_takes_no_writes(client, monkeypatch):
    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(database, "execute_sql", read_only)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert [p for p in response.json()["problems"] if "readonly" in p] != []


def test_readyz_is_503_before_the_cache_has_loaded(settings):
    open_database(settings.database)
    app = create_app(settings)  # no lifespan: the cache never refreshes
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["problems"] == ["cache: not loaded"]


def test_healthz_is_ok_after_a_recent_successful_nightly_run(client, settings):
    client.post("/data", json=CONTRACT_POST)
    run_at(recent(), settings)
    body = client.get("/healthz").json()
    assert (body["status"], body["reasons"]) == ("ok", [])
    assert body["last_scheduled_run"]["status"] == "success"


def test_healthz_is_degraded_when_the_last_scheduled_run_failed(client, settings):
    client.post("/data", json=CONTRACT_POST)
    run_at(recent() - timedelta(hours=1), settings)
    failed_nightly(recent())
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert "ended failed: ZeroDivisionError: boom" in body["reasons"][0]
    assert body["database"] == "ok" and body["last_nightly_success"] is not None


def test_healthz_is_degraded_when_the_last_success_is_a_day_and_a_half_old(client, settings):
    client.post("/data", json=CONTRACT_POST)
    run_at(datetime.now(UTC) - timedelta(hours=37), settings)
    body = client.get("/healthz").json()
    assert body["status"] == "degraded"
    assert "37 hours ago" in body["reasons"][0]


@pytest.mark.parametrize("hours,stale", [(35.9, False), (36.1, True)])
def test_a_success_is_stale_after_36_hours(hours, stale):
    last = NOW - timedelta(hours=hours)
    assert bool(run_problems(None, last, NOW)) is stale


def test_a_manual_run_does_not_make_healthz_degraded(client, settings):
    client.post("/data", json=CONTRACT_POST)
    run_at(recent(), settings)
    run_at(recent(), settings, trigger="manual")
    with database.connection_context():
        Run.update(status="failed").where(Run.trigger == "manual").execute()
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.fixture
def impatient(settings, monkeypatch):
    """A client whose POST /recompute waits for no run, with runs slowed down."""
    monkeypatch.setenv("BANDIT_TEST_PAUSE_COMPUTE", "0.3")
    server = dataclasses.replace(settings.server, recompute_wait_seconds=0.0)
    with TestClient(create_app(dataclasses.replace(settings, server=server))) as client:
        yield client


def test_a_long_recompute_answers_202_with_the_run_to_follow(impatient):
    impatient.post("/data", json=CONTRACT_POST)
    response = impatient.post("/recompute")
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    location = response.headers["location"]
    assert location == f"/runs/{response.json()['run_id']}"

    def ended():
        run = impatient.get(location).json()
        return run if run["status"] != "running" else None

    assert wait_for(ended, 30, "the run to end")["status"] == "success"
    # The run's row says success at its commit; this process serves the split once the
    # run's thread has refreshed the cache, or the refresher has (refresh_ms): soon after.
    served = lambda: impatient.get("/allocation?experiment_id=ctr_test").json()["status"]  # noqa: E731
    wait_for(lambda: served() == "computed", 2, "the new split served")


def test_a_recompute_within_the_bound_answers_its_summary(client):
    client.post("/data", json=CONTRACT_POST)
    response = client.post("/recompute")
    assert response.status_code == 200
    assert response.json()["status"] == "success" and "location" not in response.headers
