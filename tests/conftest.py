import dataclasses
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api.app import create_app
from core.db import database
from core.migrations import open_database
from core.settings import load_settings
from scheduler.job import run_job
from tests.processes import Processes

CONTRACT_POST = {
    "experiment_id": "ctr_test",
    "date": "2025-12-22",
    "variants": [
        {"variant_id": "control", "impressions": 1000, "clicks": 50},
        {"variant_id": "variant", "impressions": 1000, "clicks": 70},
    ],
}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def run_at(now: datetime, settings, trigger: str = "nightly", **kwargs):
    """run_job with the clock at `now` too, so the publish time stamped on its rows (when
    routers were first served the split) agrees with it."""
    with freeze_time(now):
        return run_job(now, settings, trigger, **kwargs)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Default settings on a fresh temporary SQLite file (never :memory:)."""
    for name in [n for n in __import__("os").environ if n.startswith("BANDIT_")]:
        monkeypatch.delenv(name)
    base = load_settings({})
    database_settings = dataclasses.replace(base.database, path=str(tmp_path / "bandit.db"))
    return dataclasses.replace(base, database=database_settings)


@pytest.fixture
def db(settings):
    open_database(settings.database)
    with database.connection_context():
        yield database
    database.close()


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def procs():
    """Child processes for the tests marked `processes`; all killed when the test ends."""
    processes = Processes()
    yield processes
    processes.kill_all()
