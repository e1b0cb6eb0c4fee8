import dataclasses
import itertools
import logging
import os

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import database
from core.migrations import open_database
from core.settings import DatabaseSettings, load_settings
from scheduler.runs import HELD, release_run
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


ENGINES = ("sqlite", "postgresql")


def engines_of(item_name: str) -> tuple[str, ...]:
    """The engines a test runs on: both, unless its name (or its module's) says it is
    about one: "sqlite" in the name runs on SQLite only, "postgres" on PostgreSQL only."""
    lowered = item_name.lower()
    if "sqlite" in lowered:
        return ("sqlite",)
    if "postgres" in lowered:
        return ("postgresql",)
    return ENGINES


def pytest_generate_tests(metafunc):
    """Every test that uses the database settings (settings, db, client, database_env)
    runs once per engine, as test_x[sqlite] and test_x[postgresql]."""
    if "engine" in metafunc.fixturenames:
        name = f"{metafunc.module.__name__}.{metafunc.function.__name__}"
        metafunc.parametrize("engine", engines_of(name), scope="function")


@pytest.fixture(scope="session")
def postgres_template(postgres_cluster):
    """A migrated database every PostgreSQL test's database is cloned from."""

    def migrated(url: str) -> None:
        open_database(DatabaseSettings(url=url), create=True)
        database.obj.close_all()

    return postgres_cluster.create_template("bandit_template", migrated)


@pytest.fixture
def settings(engine, tmp_path, monkeypatch, request):
    """Default settings on a fresh database of the test's engine: a temporary SQLite file
    (never :memory:), or a clone of the migrated PostgreSQL template. An app made in the
    test's own process stores POST /data in a writer thread (server.writer_process off):
    the web processes the tests start as children run the default, a writer process."""
    for name in [n for n in os.environ if n.startswith("BANDIT_")]:
        monkeypatch.delenv(name)
    base = load_settings({})
    base = dataclasses.replace(base, server=dataclasses.replace(base.server, writer_process=False))
    return on_a_new_database(base, engine, str(tmp_path / "bandit.db"), request)


@pytest.fixture
def new_database(engine, tmp_path, request):
    """on_new_database(settings): the same settings on another new, empty database of the
    test's engine, for a test that compares two apps each on a database of its own."""
    made = itertools.count(1)

    def on_new_database(settings):
        path = str(tmp_path / f"other-{next(made)}.db")
        return on_a_new_database(settings, engine, path, request)

    return on_new_database


def on_a_new_database(settings, engine: str, sqlite_path: str, request):
    """The settings on a new database: the SQLite file at sqlite_path, or a clone of the
    migrated PostgreSQL template, dropped when the test ends."""
    if engine == "sqlite":
        chosen = dataclasses.replace(
            settings.database, path=sqlite_path, url=f"sqlite:///{sqlite_path}"
        )
    else:
        cluster = request.getfixturevalue("postgres_cluster")
        url = cluster.clone(request.getfixturevalue("postgres_template"))
        request.addfinalizer(lambda: dropped(cluster, url))
        chosen = dataclasses.replace(settings.database, url=url)
    return dataclasses.replace(settings, database=chosen)


def dropped(cluster, url: str) -> None:
    for run_id in list(HELD):  # runs a test started and never finished
        release_run(run_id)
    if database.obj.engine == "postgresql":
        database.obj.close_all()
    cluster.drop(url)


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
    """The settings, with BANDIT_DATABASE_URL naming their database: for the command line
    entry points, which read their settings from the environment."""
    monkeypatch.setenv("BANDIT_DATABASE_URL", settings.database.url)
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
