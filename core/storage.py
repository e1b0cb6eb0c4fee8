"""The database file and what can go wrong with it (core/db.py uses this; nothing else).

The file is pinned: open_database (core/migrations) records its device and inode, every
later connection opens it in a mode that cannot create it, and every write transaction
(core.db.write_transaction) first checks that the path still names that file. A database
moved, deleted or replaced under a running process is then a DatabaseFault naming the
cause, never a new empty file that acknowledged writes would go to. A storage error
(full disk, read-only file, I/O error, corruption) is named by `storage_fault` and kept in
`health` for /healthz until a write commits again.
"""

import contextlib
import logging
import os
import sqlite3
import threading

from peewee import DatabaseError, SqliteDatabase, _savepoint

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
