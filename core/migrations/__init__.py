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

import importlib
import pkgutil

from playhouse.migrate import SchemaMigrator

from core.db import configure
from core.settings import DatabaseSettings


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
    migrator = SchemaMigrator.from_database(db)
    with db.atomic("IMMEDIATE"):
        version = current_version(db)
        for number in range(version + 1, target + 1):
            STEPS[number - 1].up(migrator, db)
            db.execute_sql("INSERT INTO schema_version (version) VALUES (?)", (number,))
        return max(version, target)


def open_database(settings: DatabaseSettings):
    """Point the shared database at a file and bring its schema up to date."""
    db = configure(settings)
    with db.connection_context():
        migrate(db)
    return db
