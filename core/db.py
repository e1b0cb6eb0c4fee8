"""Database setup: the only module that knows the backend is SQLite.

WAL lets the web process read while the clock writes; synchronous=FULL makes an
acknowledged write survive a power cut, not only a crash; writes begin IMMEDIATE so
concurrent writers queue on the busy timeout instead of failing mid-transaction when a
read lock cannot be upgraded.

The file is pinned: open_database (core/migrations) records its device and inode, every
later connection opens it in a mode that cannot create it, and every write transaction
first checks that the path still names that file. A database moved, deleted or replaced
under a running process is then a DatabaseFault naming the cause, never a new empty file
that acknowledged writes would go to.
"""

import contextlib
import functools
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from urllib.parse import quote

from peewee import DatabaseError, Query, SqliteDatabase, _savepoint, fn
from peewee import OperationalError as OperationalError  # re-exported: api handles it

from core.settings import DatabaseSettings

log = logging.getLogger("bandit.db")


class DatabaseFault(Exception):
    """The database file cannot be used: missing, replaced, empty or corrupt. The message
    names the file and the cause; nothing ever answers it by creating a new database."""


class Savepoint(_savepoint):
    def __exit__(self, exc_type, exc_val, exc_tb):
        # A full disk or an I/O error can make SQLite roll the whole transaction back; then
        # ROLLBACK TO would fail and hide the real error behind "no such savepoint".
        if exc_type is not None:
            self.db.note_fault(exc_val)
        if exc_type is not None and not self.db.in_sqlite_transaction():
            self.db.local.lost = exc_val
            return None
        return super().__exit__(exc_type, exc_val, exc_tb)


class PinnedDatabase(SqliteDatabase):
    """SqliteDatabase that keeps the real error when SQLite has already rolled back, and
    checks on each new connection that the file is still the one pinned at start."""

    path: str | None = None
    identity: tuple[int, int] | None = None
    # Per thread: `lost`, the error that rolled its transaction back; `stale`, whether its
    # connection opened the file read-only and must be opened again before the next write.
    local = threading.local()

    def note_fault(self, exc: BaseException) -> None:
        """Tell /healthz about a storage fault; a read-only connection is opened again."""
        cause = storage_fault(exc)
        if cause:
            health.failed(cause)
            self.local.faulted = True
            self.local.stale = is_read_only(exc)

    def in_sqlite_transaction(self) -> bool:
        return not self.is_closed() and self.connection().in_transaction

    def savepoint(self):
        return Savepoint(self)

    def rollback(self):
        if self.in_sqlite_transaction():  # else "cannot rollback" would replace the cause
            super().rollback()

    def commit(self):
        lost, self.local.lost = getattr(self.local, "lost", None), None
        if lost is not None and not self.in_sqlite_transaction():
            raise lost  # a savepoint's failure took the transaction: nothing to commit
        super().commit()

    def pin(self, path: str) -> None:
        found = os.stat(path)
        self.path, self.identity = path, (found.st_dev, found.st_ino)

    def check_identity(self) -> None:
        if self.identity is None:
            return
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            self.fold_wal()
            raise DatabaseFault(missing_message(self.path)) from None
        if (found.st_dev, found.st_ino) != self.identity:
            self.fold_wal()
            raise DatabaseFault(replaced_message(self.path))

    def reopen(self) -> None:
        """A new connection in place of this thread's, peewee's context kept: SQLite opens a
        write-protected file read-only, and that connection stays so once it is writable."""
        with self._lock:
            fresh = self._connect()
            self._initialize_connection(fresh)
            stale, self._state.conn = self._state.conn, fresh
            stale.close()

    def fold_wal(self) -> None:
        """Copy the committed writes from the WAL into the file this connection has open,
        wherever it is now: the WAL is found by name, so a moved file would otherwise lose
        them to the path's next user. Best effort: SQLite skips it on close."""
        if not self.is_closed() and not self.in_sqlite_transaction():
            with contextlib.suppress(sqlite3.Error, DatabaseError):
                self.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def _connect(self):
        try:
            conn = super()._connect()
        except sqlite3.OperationalError:
            self.check_identity()  # a missing file says so, not "unable to open"
            raise
        try:
            self.check_identity()
        except DatabaseFault:
            conn.close()
            raise
        return conn


def missing_message(path: str) -> str:
    return (
        f"database file {os.path.abspath(path)} is missing: it was moved or deleted while in"
        " use; put it back (or restore a backup) and restart"
    )


def replaced_message(path: str) -> str:
    return (
        f"database file {os.path.abspath(path)} was replaced by another file since this"
        " process opened it; restart to use the new one"
    )


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
    mode = "rwc" if create else "rw"
    database.init(uri(settings.path, mode), uri=True, pragmas=pragmas(settings))
    database.path = settings.path
    return database


# What a database error says about the storage, by SQLite's primary result code.
STORAGE_FAULTS = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_READONLY: "the database file is read-only",
    sqlite3.SQLITE_IOERR: "disk I/O error",
    sqlite3.SQLITE_CORRUPT: "the database file is corrupt",
    sqlite3.SQLITE_NOTADB: "the database file is not a database",
    sqlite3.SQLITE_CANTOPEN: "the database file cannot be opened",
}


def driver_error(exc: BaseException) -> BaseException:
    """The driver's exception inside peewee's wrapper (peewee passes it as args[0])."""
    inner = exc.args[0] if exc.args else None
    return inner if isinstance(inner, sqlite3.Error) else exc


# SQLite's messages for those codes: an error raised at COMMIT carries no code attribute.
STORAGE_MESSAGES = {
    "database or disk is full": sqlite3.SQLITE_FULL,
    "attempt to write a readonly database": sqlite3.SQLITE_READONLY,
    "disk I/O error": sqlite3.SQLITE_IOERR,
    "database disk image is malformed": sqlite3.SQLITE_CORRUPT,
    "file is not a database": sqlite3.SQLITE_NOTADB,
    "unable to open database file": sqlite3.SQLITE_CANTOPEN,
}


def is_read_only(exc: BaseException) -> bool:
    return STORAGE_FAULTS[sqlite3.SQLITE_READONLY] in (storage_fault(exc) or "")


def storage_fault(exc: BaseException) -> str | None:
    """The storage cause of a database error (full, read-only, I/O, corrupt, missing) with
    SQLite's own words, or None for any other error (a constraint, a busy lock, a bug)."""
    if isinstance(exc, DatabaseFault):
        return str(exc)
    original = driver_error(exc)
    code = getattr(original, "sqlite_errorcode", None) or STORAGE_MESSAGES.get(str(original), 0)
    cause = STORAGE_FAULTS.get(code & 0xFF)
    return f"{cause} ({original})" if cause else None


class StorageHealth:
    """This process's last storage fault, until a write transaction commits again."""

    def __init__(self):
        self.fault: str | None = None

    def failed(self, cause: str) -> None:
        if cause != self.fault:
            log.error("storage fault: %s", cause)  # once per new cause, not per request
        self.fault = cause

    def problems(self) -> list[str]:
        fault = self.fault
        return [f"storage: {fault}"] if fault else []


health = StorageHealth()


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
