"""The SQLite engine: one file, and what can go wrong with it (core.db uses this; nothing
else does).

WAL lets the web process read while the clock writes; synchronous=FULL makes an
acknowledged write survive a power cut, not only a crash; writes begin IMMEDIATE, which
takes the one write lock of the file up front, so concurrent writers queue on the busy
timeout instead of failing mid-transaction when a read lock cannot be upgraded.

The file is pinned: open_database (core/migrations) records its device and inode, every
later connection opens it in a mode that cannot create it, and every write transaction
(core.db.write_transaction) first checks that the path still names that file. A database
moved, deleted or replaced under a running process is then a DatabaseFault naming the
cause, never a new empty file that acknowledged writes would go to. A storage error
(full disk, read-only file, I/O error, corruption) is named by `storage_fault` and kept in
`health` for /healthz until a write commits again.
"""

import contextlib
import functools
import itertools
import json
import logging
import math
import os
import socket
import sqlite3
from datetime import UTC
from urllib.parse import quote

from peewee import OP, SQL, DatabaseError, Expression, SqliteDatabase, _savepoint, fn

from core.db.health import DatabaseFault, ThreadState, health

log = logging.getLogger("bandit.db")


def _has_math_functions() -> bool:
    try:
        sqlite3.connect(":memory:").execute("SELECT power(2, 3)")
    except sqlite3.OperationalError:
        return False
    return True


HAS_POWER = _has_math_functions()


def pragmas(settings) -> dict:
    return {
        "journal_mode": "wal",
        "synchronous": settings.synchronous,
        "busy_timeout": settings.busy_timeout_ms,
        "foreign_keys": 1,
    }


def uri(path: str, mode: str) -> str:
    return f"file:{quote(os.path.abspath(path))}?mode={mode}"


SAVEPOINTS = itertools.count()  # names unique in the process, so in any nesting


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
    local = ThreadState()

    engine = "sqlite"
    dialect = "sqlite"

    def setup(self, settings, create: bool = False) -> None:
        """Point at settings.path; only `create` opens in a mode that makes a missing file."""
        self.identity = None
        self.init(
            uri(settings.path, "rwc" if create else "rw"), uri=True, pragmas=pragmas(settings)
        )
        self.path = settings.path
        # Discounted counts use POWER in SQL; SQLite has it only when built with math functions.
        if not HAS_POWER:
            self.register_function(math.pow, "power", 2, deterministic=True)

    def describe(self) -> str:
        return f"database file {os.path.abspath(self.path)}"

    def write_atomic(self, scope: str):
        return self.atomic("IMMEDIATE")  # the file has one write lock: every scope takes it

    def read_atomic(self):
        return self.atomic("DEFERRED")

    def lock_wait(self, milliseconds: int) -> None:
        """How long this connection's writes wait for the lock from now on."""
        self.execute_sql(f"PRAGMA busy_timeout = {int(milliseconds)}")

    def position_in(self, text, part):
        return fn.instr(text, part)

    def days_between(self, later, earlier):
        return fn.julianday(later) - fn.julianday(earlier)

    @contextlib.contextmanager
    def staging_stream(self, model):
        """Each batch in its own transaction (stage_rows, repeats kept out), so that the
        caller can ask what went in after each."""
        yield lambda rows: self.stage_rows(model, rows, skip_repeats=True)

    plain_inserts_pay = False  # core.db.plain_inserts_pay

    def one_of(self, field, values: list[int]):
        listed = SQL("(SELECT value FROM json_each(?))", (json.dumps(values),))
        return Expression(field, OP.IN, listed)

    def is_busy(self, exc: BaseException) -> bool:
        return "locked" in str(exc) or "busy" in str(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return False  # one writer at a time: no deadlock, no serialization failure

    def storage_fault(self, exc: BaseException) -> str | None:
        return storage_fault(exc)

    def integrity_problem(self) -> str | None:
        """What PRAGMA quick_check finds wrong with the open database, or None."""
        try:
            rows = [row[0] for row in self.execute_sql("PRAGMA quick_check").fetchall()]
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            return str(exc)
        return None if rows == ["ok"] else "; ".join(rows[:5])

    # One host and one write lock: rows need no lock of their own, nobody listens for
    # changes (web processes poll), leases go by the caller's clock, and a run's liveness
    # is its pid (holder_is_gone).
    listens = False

    def lock_rows(self, model, pks: list[int]) -> None:
        pass

    def notify_serving(self, version: int) -> None:
        pass

    def lease_now(self, now):
        if now.tzinfo is None:  # as core.db.naive_utc: astimezone would take it for local
            raise ValueError(f"{now} has no time zone; pass an aware time")
        return now.astimezone(UTC).replace(tzinfo=None)

    def hold_run(self, run_id: int):
        return None

    def holder_is_gone(self, holder: str | None, run_id: int | None = None) -> bool:
        """True only for a run holder on this host whose process no longer exists: anything
        uncertain (another host, no permission) says False and the lease decides."""
        host, _, pid = (holder or "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def temporary_tables(self) -> list[str]:
        rows = self.execute_sql("SELECT name FROM sqlite_temp_master WHERE type = 'table'")
        return sorted(name for (name,) in rows)

    # -- bulk staging in TEMP tables (ingest/staging.py, scheduler/publish.py)

    staging_keeps_out_repeats = True

    def create_staging_table(self, model) -> None:
        """With the model's indexes from the start: a unique one keeps a repeated key out
        as its row arrives (stage_rows with skip_repeats)."""
        model.create_table()

    def stage_rows(self, model, rows: list[tuple], skip_repeats: bool = False) -> None:
        """A prepared one-row INSERT per row (executemany), in one transaction of the
        temporary database; with skip_repeats, ON CONFLICT DO NOTHING."""
        with self.atomic():
            self.cursor().executemany(staging_insert(model, skip_repeats), rows)

    def index_staged(self, model) -> bool:
        """Indexed at creation: every repeated key was kept out already."""
        return True

    def analyze_staged(self, model) -> None:
        pass  # SQLite plans the staged queries well without statistics

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
        # A name of our own: peewee's is a uuid4 per savepoint, a tenth of a POST's write.
        return Savepoint(self, sid=f"s{next(SAVEPOINTS)}")

    def rollback(self):
        if self.in_sqlite_transaction():  # else "cannot rollback" would replace the cause
            super().rollback()

    def commit(self):
        lost, self.local.lost = self.local.lost, None
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


@functools.cache
def staging_insert(model, skip_repeats: bool) -> str:
    fields = model._meta.sorted_fields
    insert = model.insert_many([(0,) * len(fields)], fields=fields)
    return (insert.on_conflict_ignore() if skip_repeats else insert).sql()[0]


def copy_database_file(source, partial, busy_timeout_s: float) -> None:
    """The online backup of the file source into partial, then PRAGMA integrity_check."""
    from core.db.health import BackupError

    # Read-only: the backup must never be the thing that changes the live database.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # all pages in one step: one snapshot, no restarts under writes
        # A self-contained single file: no -wal or -shm needed beside the copy.
        dst.execute("PRAGMA journal_mode=DELETE")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copy failed its integrity check: {result}")
    finally:
        dst.close()
        src.close()


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


def rebuild_table(db, model) -> None:
    """Make `model`'s table again as the model now describes it, with its rows, inside the
    caller's transaction: SQLite's ALTER TABLE can neither add nor drop a constraint. The
    old table is renamed aside (taking its indexes with it), the new one created under
    the name and filled with the columns both have, then the old one dropped and the
    model's indexes built. Nothing may refer to the table (a rename would move those
    references to the old one)."""
    table = model._meta.table_name
    aside = f"{table}_before_rebuild"
    columns = ", ".join(f'"{f.column_name}"' for f in model._meta.sorted_fields)
    db.execute_sql(f'ALTER TABLE "{table}" RENAME TO "{aside}"')
    model._schema.create_table(safe=False)
    db.execute_sql(f'INSERT INTO "{table}" ({columns}) SELECT {columns} FROM "{aside}"')
    db.execute_sql(f'DROP TABLE "{aside}"')
    model._schema.create_indexes(safe=False)
