import dataclasses
import logging
import os

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import database
from core.migrations import open_database
from core.settings import load_settings
from tests.postgres import require_cluster
from tests.processes import Processes


@pytest.fixture(autouse=True)
def logging_restored():
    """An in-process `python -m scheduler` configures logging with a handler on the test's
    captured stderr, which pytest closes after the test: put the loggers back as they were,
    or later tests' threads log to a closed stream and caplog sees nothing."""
    names = ("", "bandit", "uvicorn", "uvicorn.access", "apscheduler")
    saved = [(lg, lg.handlers[:], lg.propagate, lg.level) for lg in map(logging.getLogger, names)]
    yield
    for lg, handlers, propagate, level in saved:
        lg.handlers[:], lg.propagate, lg.level = handlers, propagate, level


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Default settings on a fresh temporary SQLite file (never :memory:)."""
    for name in [n for n in os.environ if n.startswith("BANDIT_")]:
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
def database_env(settings, monkeypatch):
    """The settings, with BANDIT_DATABASE_PATH pointing at their database: for the command
    line entry points, which read their settings from the environment."""
    monkeypatch.setenv("BANDIT_DATABASE_PATH", settings.database.path)
    return settings


@pytest.fixture
def procs():
    """Child processes for the tests marked `processes`; all killed when the test ends."""
    processes = Processes()
    yield processes
    processes.kill_all()


@pytest.fixture(scope="session")
def postgres_cluster():
    """One throwaway PostgreSQL cluster for the test session (each xdist worker is a session
    of its own), stopped at the end, on Ctrl-C too (and by atexit if the teardown never
    runs). Binaries missing: the tests that use it skip, or fail under CI
    (tests/postgres.py, require_cluster)."""
    cluster = require_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
