"""Database setup: the only module that knows the backend is SQLite.

WAL lets the web process read while the clock writes; synchronous=FULL makes an
acknowledged write survive a power cut, not only a crash; writes begin IMMEDIATE so
concurrent writers queue on the busy timeout instead of failing mid-transaction when a
read lock cannot be upgraded.

The file is pinned and its faults named in core/storage.py.
"""

import functools
import logging
import math
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from urllib.parse import quote

from peewee import DatabaseError, Query, SqliteDatabase, fn
from peewee import OperationalError as OperationalError  # re-exported: api handles it

from core.settings import DatabaseSettings
from core.storage import DatabaseFault, PinnedDatabase, health
from core.storage import storage_fault as storage_fault  # re-exported: api names faults

database = PinnedDatabase(None)


def _has_math_functions() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT power(2, 3)")
    except sqlite3.OperationalError:
        return False
    return True


# Discounted counts use POWER in SQL; SQLite has it only when built with math functions.
if not _has_math_functions():
    database.register_function(math.pow, "power", 2, deterministic=True)


def days_between(later, earlier):
    """SQL expression: whole days from `earlier` to `later` (dates)."""
    return fn.julianday(later) - fn.julianday(earlier)


def pragmas(settings: DatabaseSettings) -> dict:
    return {
        "journal_mode": "wal",
        "synchronous": settings.synchronous,
        "busy_timeout": settings.busy_timeout_ms,
        "foreign_keys": 1,
    }


def uri(path: str, mode: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode={mode}"


def configure(settings: DatabaseSettings, create: bool = False) -> SqliteDatabase:
    """Point the shared database at a file (core.migrations.open_database also migrates
    and pins it). Only `create` opens in a mode that makes a missing file."""
    if not database.is_closed():
        database.close()
    database.identity = None
    health.fault = None  # a fault belongs to the file it was met on
    mode = "rwc" if create else "rw"
    database.init(uri(settings.path, mode), uri=True, pragmas=pragmas(settings))
    database.path = settings.path
    return database


def is_busy(exc: Exception) -> bool:
    """Whether a database error means another connection held the lock past the timeout."""
    return "locked" in str(exc) or "busy" in str(exc)


@contextmanager
def write_transaction():
    """A transaction that takes the write lock up front, on the pinned file. A storage
    fault, also one a savepoint inside met, is noted in `health`; a clean commit clears it."""
    top = database.transaction_depth() == 0
    if top:
        database.local.faulted = False
        if getattr(database.local, "stale", False):
            database.local.stale = False
            database.reopen()
    try:
        database.check_identity()
        with database.atomic("IMMEDIATE") as transaction:
            yield transaction
    except Exception as exc:
        if top:
            database.note_fault(exc)
        raise
    if top and not database.local.faulted:
        health.fault = None


# Every error a query can raise: peewee's wrappers, the driver's own (a cursor's
# executemany is not wrapped), and a file that is no longer the pinned one.
DATABASE_ERRORS = (DatabaseError, sqlite3.DatabaseError, DatabaseFault)


def integrity_problem() -> str | None:
    """What PRAGMA quick_check finds wrong with the open database, or None."""
    try:
        rows = [row[0] for row in database.execute_sql("PRAGMA quick_check").fetchall()]
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        return str(exc)
    return None if rows == ["ok"] else "; ".join(rows[:5])


def read_transaction():
    """A transaction that gives one consistent snapshot across several queries."""
    return database.atomic("DEFERRED")


def bound(value: date) -> str:
    """The text sqlite3 stores for a date or datetime (its default adapters), worked out
    once: binding the object instead calls a Python adapter for every row of a bulk write.
    (datetime is a subclass of date.)"""
    return value.isoformat(" ") if isinstance(value, datetime) else value.isoformat()


def as_utc(stored: datetime) -> datetime:
    """A stored time (naive UTC) as an aware one: RFC 3339 needs the offset."""
    return stored.replace(tzinfo=UTC)


def naive_utc(moment: datetime) -> datetime:
    """An aware time as it is stored: naive UTC. A naive time is refused: astimezone would
    read it as local time."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone; pass an aware time")
    return moment.astimezone(UTC).replace(tzinfo=None)


def utc_text(stored: datetime) -> str:
    """A stored time as RFC 3339 text, with the "Z" that pydantic writes for UTC."""
    return stored.isoformat() + "Z"


# Peewee builds SQL in Python, which costs more than SQLite running it for a few rows and
# would be paid again for every row of a bulk write: both helpers below build a
# statement's SQL once and let the driver bind each row.


@functools.cache
def prepared(build: Callable[..., Query], *shape) -> str:
    """The SQL of the query build(*shape) makes, built once per shape and reused. Every
    value must be a parameter the caller binds: anything peewee adds on its own (a column
    default, a time) would be frozen at the first call."""
    return build(*shape).sql()[0]


def slices(items: list, size: int) -> Iterator[list]:
    """peewee.chunked for a list, by slicing. chunked pads every group to `size` and strips
    the padding one item at a time, so each call costs in proportion to `size`: more than
    the query itself for the few rows of a POST. Use chunked for streams."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def execute_many(query, rows: list[tuple]) -> None:
    """Run a one-row INSERT, built by peewee from rows[0], for every row (DB-API executemany).

    Values peewee adds on its own (column defaults) come after the given ones and are
    reused for every row.
    """
    if not rows:
        return
    sql, params = query.sql()
    constant = tuple(bound(v) if isinstance(v, date) else v for v in params[len(rows[0]) :])
    database.cursor().executemany(sql, [(*row, *constant) for row in rows])


def drop_temporary_tables(models: list) -> None:
    """Drop staging TEMP tables once their rows are committed (or abandoned), never failing.

    This runs after the commit that matters, so an error here must not turn a committed
    publish or load into a failure. Left behind, the tables only go on taking space in
    this connection's temporary file, and go with the connection; the next staging on it
    drops them first."""
    try:
        database.drop_tables(models)
    except (DatabaseError, sqlite3.DatabaseError):  # peewee's wrapper, or the driver's
        logging.getLogger("bandit.db").warning("could not drop temporary tables", exc_info=True)
