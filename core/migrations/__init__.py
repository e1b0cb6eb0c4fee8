"""Schema migrations: the numbered step modules of this package (0001_initial.py, ...),
applied once each, in order, and recorded in the schema_version table.

A step declares frozen copies of the tables it creates, as they were at its version, and
says exactly what it changes; it never asks what already exists. Steps 1..N alone thus
build a real version-N database, which is how the tests make old databases. A shipped step
is never edited: the schema changes by adding the next file (tests/test_migrations.py
fails when core/schema.py and the steps disagree).

Each step module has `up(migrator, db)`, as in peewee's own runner (playhouse.migrations);
that runner is not used because it records names in its own table, and databases in the
field record numbers in schema_version.
"""

import dataclasses
import importlib
import logging
import os
import pkgutil
import sys

from peewee import DatabaseError
from playhouse.migrate import SchemaMigrator

from core.db import (
    DatabaseFault,
    configure,
    describe,
    engine_name,
    integrity_problem,
    storage_fault,
)
from core.settings import DatabaseSettings

log = logging.getLogger("bandit.db")


def load_steps() -> list:
    """The step modules in order; their names start with digits, so no plain import."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[:4].isdigit())
    numbers = [int(name[:4]) for name in names]
    if numbers != list(range(1, len(names) + 1)):
        raise RuntimeError(f"migration steps must be numbered 1, 2, ... without gaps: {names}")
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


STEPS = load_steps()


def current_version(db) -> int:
    if not db.table_exists("schema_version"):
        return 0
    return db.execute_sql("SELECT max(version) FROM schema_version").fetchone()[0] or 0


def migrate(db, target: int | None = None) -> int:
    """Apply the steps the database has not seen, up to `target` (all by default), with
    their version bumps in one transaction that takes the write lock first, so a second
    process opening the same file waits and then finds nothing to do. Return the version."""
    target = len(STEPS) if target is None else target
    if current_version(db) >= target:  # nothing pending: no write lock (a publish may hold it)
        return current_version(db)
    migrator = SchemaMigrator.from_database(getattr(db, "obj", None) or db)
    locked = db.write_atomic("migrate") if hasattr(db, "write_atomic") else db.atomic("IMMEDIATE")
    with locked:
        version = current_version(db)
        for number in range(version + 1, target + 1):
            STEPS[number - 1].up(migrator, db)
            db.execute_sql(f"INSERT INTO schema_version (version) VALUES ({db.param})", (number,))
        return max(version, target)


def open_database(settings: DatabaseSettings, create: bool | None = None):
    """Point the shared database at its file, pinned (core.db), checked with PRAGMA
    quick_check, its schema up to date; a file that cannot be used is a DatabaseFault.

    A new database is made only when nothing of one is at the path, and only when `create`
    (by default database.create_if_missing) allows it: the first start of an install, or
    `python -m core init`. A `-wal` without its database means the file was moved or
    deleted, and an empty file is no database; both are refused, never started over.
    """
    if engine_name(settings) == "postgresql":
        return open_server_database(settings, create)
    if not os.path.exists(settings.path):
        if not (settings.create_if_missing if create is None else create):
            raise DatabaseFault(f"{where(settings)} does not exist: {NOT_CREATED}")
        create_database(settings)
    if os.path.getsize(settings.path) == 0:
        raise DatabaseFault(f"{where(settings)} is empty (0 bytes): {NOT_A_FRESH_START}")
    db = configure(settings)
    try:
        with db.connection_context():
            db.pin(settings.path)
            version = checked_and_migrated(db, settings)
    except (DatabaseError, OSError) as exc:
        raise DatabaseFault(f"{where(settings)}: {storage_fault(exc) or exc}") from exc
    log.warning("using %s (schema version %d)", where(settings), version)
    return db


def attach_database(settings: DatabaseSettings):
    """Point the shared database at one another process of this host has opened with
    open_database (checked, migrated): configured and pinned as it is now, without the
    check and the migration (the web process's writer, ingest/writer_process.py)."""
    db = configure(settings)
    with db.connection_context():
        db.pin(settings.path)  # the file's identity; PostgreSQL reads the server's own
    return db


def open_server_database(settings: DatabaseSettings, create: bool | None = None):
    """A PostgreSQL database: the server must answer, be the same database on every later
    connection (pinned by the cluster's system identifier and the database's oid), and
    have this service's schema; an empty database gets it only when `create` allows."""
    db = configure(settings)
    try:
        with db.connection_context():
            db.pin()
            if not db.get_tables() and not (
                settings.create_if_missing if create is None else create
            ):
                raise DatabaseFault(f"{describe()} has no tables: {NOT_CREATED}")
            version = migrate(db)
    except (DatabaseError, OSError) as exc:
        raise DatabaseFault(f"{describe()}: {storage_fault(exc) or exc}") from exc
    log.warning("using %s (schema version %d)", describe(), version)
    return db


NOT_CREATED = (
    "database.create_if_missing is false; restore it from a backup, or make an empty one"
    " with python -m core init"
)
NOT_A_FRESH_START = (
    "not a database; restore it from a backup, or delete it to start with an empty one"
)


def where(settings: DatabaseSettings) -> str:
    return f"database file {os.path.abspath(settings.path)}"


def checked_and_migrated(db, settings: DatabaseSettings) -> int:
    problem = integrity_problem()
    if problem:
        raise DatabaseFault(f"{where(settings)} failed its integrity check: {problem}")
    return migrate(db)


def create_database(settings: DatabaseSettings) -> None:
    """Build a new database beside the path and link it into place, so that a second
    process starting at the same moment finds a whole database or none, never an empty
    file; if that process linked first, its database is the one used."""
    leftover = next(
        (f for f in (f"{settings.path}-wal", f"{settings.path}-shm") if os.path.exists(f)), None
    )
    if leftover:
        raise DatabaseFault(
            f"{where(settings)} is missing but {leftover} is there: the database was moved"
            " or deleted; put it back (or restore a backup)"
        )
    fresh = dataclasses.replace(settings, path=f"{settings.path}.new-{os.getpid()}")
    db = configure(fresh, create=True)
    with db.connection_context():  # closing the last connection folds the WAL in
        migrate(db)
    try:
        os.link(fresh.path, settings.path)
        log.warning("created a new empty database: %s", where(settings))
    except FileExistsError:
        pass
    finally:
        os.unlink(fresh.path)


def open_database_or_exit(settings: DatabaseSettings) -> None:
    """For command-line entry points: a database that cannot be used (missing, empty,
    corrupt) is one line naming it and exit status 3, not a traceback."""
    try:
        open_database(settings)
    except DatabaseFault as fault:
        print(f"cannot use the database: {fault}", file=sys.stderr)
        raise SystemExit(3) from None
