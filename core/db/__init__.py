"""The database, on either engine: the one module that knows which one it is.

`database` is a proxy every model is bound to; configure() points it at the engine that
settings.database.url names: a SQLite file (core/db/sqlite.py, the default) or a
PostgreSQL server (core/db/postgres.py). Everything that differs between the two is a
method of the engine object (transactions and locks, date arithmetic, which errors mean
busy, transient or a storage fault, run liveness, change notification, temporary tables);
the functions here are what the rest of the code calls, and no other module names an
engine (tests/test_layout.py checks that no other module imports sqlite3 or psycopg).
"""

import contextlib
import functools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

from peewee import DatabaseError, DatabaseProxy, Query, SqliteDatabase
from peewee import OperationalError as OperationalError  # re-exported: api handles it
from playhouse.pool import MaxConnectionsExceeded

from core.db.health import BackupError as BackupError
from core.db.health import DatabaseFault as DatabaseFault
from core.db.health import health as health
from core.db.sqlite import PinnedDatabase, rebuild_table
from core.db.sqlite import copy_database_file as copy_database_file
from core.settings import redacted

try:  # the PostgreSQL driver is needed only for a postgresql:// URL
    import psycopg
except ImportError:  # pragma: no cover - installed with the requirements
    psycopg = None


class Database(DatabaseProxy):
    """A proxy whose transactions and savepoints are the engine's own (peewee's proxy would
    build generic ones around itself and skip the engine's savepoint handling)."""

    __slots__ = ("_Model", "_callbacks", "obj")

    def __setattr__(self, attr, value):
        if attr in self.__slots__:
            return object.__setattr__(self, attr, value)
        return setattr(self.obj, attr, value)  # a test's monkeypatch reaches the engine

    def __delattr__(self, attr):
        return delattr(self.obj, attr)

    def connection_context(self):
        return self.obj.connection_context()

    def atomic(self, *args, **kwargs):
        return self.obj.atomic(*args, **kwargs)

    def transaction(self, *args, **kwargs):
        return self.obj.transaction(*args, **kwargs)

    def savepoint(self):
        return self.obj.savepoint()

    def manual_commit(self):
        return self.obj.manual_commit()

    def __getattribute__(self, attr):
        # The engine's attributes, found at once: peewee's Proxy finds them in __getattr__,
        # which Python calls only once the normal lookup has failed and built an
        # AttributeError (5,000 instructions, callgrind; a write reads a dozen of them).
        if attr in PROXY_OWN or attr.startswith("__"):  # (__class__ stays the proxy's)
            return object.__getattribute__(self, attr)
        return getattr(object.__getattribute__(self, "obj"), attr)


# What the proxy answers itself: its slots and the methods of its classes.
PROXY_OWN = frozenset(name for cls in Database.__mro__[:-1] for name in vars(cls))
database = Database()
database.initialize(PinnedDatabase(None))
ENGINES: dict[str, object] = {"sqlite": database.obj}


def engine_name(settings) -> str:
    """ "sqlite" or "postgresql", from settings.database.url."""
    return "postgresql" if settings.url.startswith(("postgresql://", "postgres://")) else "sqlite"


def engine_for(name: str):
    if name not in ENGINES:
        from core.db.postgres import PostgresDatabase

        ENGINES[name] = PostgresDatabase(None)
    return ENGINES[name]


CONFIGURED = [0]  # how many times configure() has run in this process


def configurations() -> int:
    """Changes whenever the database is configured (opened) again, even at the same path:
    what a thread learned about the database before then may no longer hold."""
    return CONFIGURED[0]


def configure(settings, create: bool = False):
    """Point the shared database at what settings name (core.migrations.open_database
    also checks, migrates and pins it). On SQLite only `create` opens in a mode that makes
    a missing file."""
    CONFIGURED[0] += 1
    if not database.is_closed():
        database.close()
    engine = engine_for(engine_name(settings))
    if engine is not database.obj:
        if not database.obj.is_closed():
            database.obj.close()
        database.initialize(engine)
    health.fault = None  # a fault belongs to the database it was met on
    engine.setup(settings, create=create)
    return database


def engine():
    """The engine object the database points at."""
    return database.obj


def days_between(later, earlier):
    """SQL expression: whole days from `earlier` to `later` (dates)."""
    return database.obj.days_between(later, earlier)


def dump_server_database(url: str, partial) -> None:
    """pg_dump of a PostgreSQL database into partial, checked (core/db/postgres.py)."""
    from core.db.postgres import dump_server_database as dump

    dump(url, partial)


def position_in(text, part):
    """SQL expression: where `part` first occurs in `text` (1-based), 0 when it does not:
    a substring test with no wildcard to escape (instr on SQLite, strpos on PostgreSQL)."""
    return database.obj.position_in(text, part)


def describe() -> str:
    """The database in use, for messages: the file, or the server URL without a password."""
    return database.obj.describe()


def named(settings) -> str:
    """The database settings name, for messages, before it is opened."""
    if engine_name(settings) == "postgresql":
        return f"PostgreSQL database {redacted(settings.url)}"
    return f"database file {os.path.abspath(settings.path)}"


def is_busy(exc: Exception) -> bool:
    """Whether a database error means another connection held the lock past the timeout."""
    return database.obj.is_busy(exc)


def is_transient(exc: Exception) -> bool:
    """Whether a database error (a deadlock, a serialization failure) is settled by running
    the whole transaction again."""
    return database.obj.is_transient(exc)


def storage_fault(exc: BaseException) -> str | None:
    """The storage cause of a database error, or None for any other error."""
    return database.obj.storage_fault(exc)


@contextmanager
def write_transaction(scope: str = "global"):
    """A transaction that takes the write lock of its scope up front, on the pinned
    database. On SQLite every scope is the file's one write lock; on PostgreSQL each scope
    is an advisory lock of its own, and "ingest" takes none (upserts need no lock). A
    storage fault, also one a savepoint inside met, is noted in `health`; a clean commit
    clears it."""
    top = database.transaction_depth() == 0
    if top:
        database.local.faulted = False
        if database.local.stale:
            database.local.stale = False
            database.reopen()
    try:
        database.check_identity()
        with database.obj.write_atomic(scope) as transaction:
            yield transaction
    except Exception as exc:
        if top:
            database.note_fault(exc)
        raise
    if top and not database.local.faulted:
        health.fault = None


# Every error a query can raise: peewee's wrappers, the driver's own (a cursor's
# executemany is not wrapped), and a file that is no longer the pinned one.
DRIVER_ERRORS = (sqlite3.DatabaseError,) + ((psycopg.Error,) if psycopg else ())
# A full connection pool (PostgreSQL) is a busy database too.
DATABASE_ERRORS = (DatabaseError, *DRIVER_ERRORS, DatabaseFault, MaxConnectionsExceeded)


def integrity_problem() -> str | None:
    """What the engine's integrity check finds wrong with the open database, or None."""
    return database.obj.integrity_problem()


def read_transaction():
    """A transaction that gives one consistent snapshot across several queries."""
    return database.obj.read_atomic()


def lock_wait(milliseconds: int) -> None:
    """How long this connection's writes wait for a lock from now on."""
    database.obj.lock_wait(milliseconds)


def lock_rows(model, pks: list[int]) -> None:
    """Lock these rows until the transaction ends, in key order (PostgreSQL: SELECT ... FOR
    UPDATE; SQLite: nothing to do, the write transaction holds the file's lock)."""
    if pks:
        database.obj.lock_rows(model, pks)


def notify_serving(version: int) -> None:
    """Tell every web process listening that the serving counter reached `version`, at the
    commit of the calling transaction (PostgreSQL NOTIFY; SQLite: they poll)."""
    database.obj.notify_serving(version)


class ChangeListener:
    """Waits until the cache should refresh: on SQLite, the poll interval; on PostgreSQL,
    until a NOTIFY on the serving channel (a publish or a new experiment on any host,
    delivered at its commit), or `fallback_s` without one, on a connection of its own.

    A lost connection is opened again, and a new one refreshes at once: notifications
    sent while nothing listened are caught up by that refresh ("version > last seen"
    cannot miss a change).
    """

    def __init__(self, interval_s: float, fallback_s: float):
        self.interval_s, self.fallback_s = interval_s, fallback_s
        self.conn = None
        self.listening = database.obj.listens

    def wait(self, stopped) -> None:
        if not self.listening:
            stopped.wait(self.interval_s)
            return
        try:
            if self.conn is None:
                self.conn = database.obj.listener()
                return  # listening from now on: catch up on what came before
            deadline = time.monotonic() + self.fallback_s
            while not stopped.is_set() and (left := deadline - time.monotonic()) > 0:
                if self.notified(min(left, 1.0)):
                    return
        except Exception:  # the driver's error, or the server gone: listen again later
            logging.getLogger("bandit.db").warning("lost the change listener", exc_info=True)
            self.close()
            stopped.wait(min(1.0, self.fallback_s))  # then listen again, and catch up

    def notified(self, timeout_s: float) -> bool:
        got = any(True for _ in self.conn.notifies(timeout=timeout_s, stop_after=1))
        if got:  # several at once: one refresh takes them all
            for _ in self.conn.notifies(timeout=0.0):
                pass
        return got

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def lease_now(now: datetime) -> datetime:
    """The time a run lease is stamped and judged by (naive UTC): the caller's `now` on
    SQLite (one host), the database server's clock on PostgreSQL, the one clock that
    every host shares, so that skew between hosts cannot expire a live lease."""
    return database.obj.lease_now(now)


def hold_run(run_id: int):
    """On PostgreSQL, a connection holding the run's session lock until it is closed (the
    server frees it when the process dies, on any host); None on SQLite."""
    return database.obj.hold_run(run_id)


def temporary_tables() -> list[str]:
    """This connection's temporary tables, by name."""
    return database.obj.temporary_tables()


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


def prepared(build: Callable[..., Query], *shape) -> str:
    """The SQL of the query build(*shape) makes, built once per engine and shape and
    reused. Every value must be a parameter the caller binds: anything peewee adds on its
    own (a column default, a time) would be frozen at the first call."""
    return prepared_for(database.obj.dialect, build, *shape)


@functools.cache
def prepared_for(dialect: str, build: Callable[..., Query], *shape) -> str:
    return build(*shape).sql()[0]


def plain_inserts_pay() -> bool:
    """Whether rows known to be new are worth inserting without ON CONFLICT. PostgreSQL: yes,
    its upsert probes the unique index before each row and writes the row a second time to
    confirm it (a million-row load: 6.8 against 5.4 s). SQLite: no, its upsert costs about
    what the insert does, and picking the rows out costs more (1.4 against 1.2 s)."""
    return database.obj.plain_inserts_pay


def one_of(field, values: list[int]):
    """`field IN values` for any number of integers as one bound parameter, where IN (?, ...)
    would take a parameter each (at most 65,535 a statement on PostgreSQL, 32,766 on
    SQLite): PostgreSQL = ANY(array), SQLite IN (SELECT value FROM json_each(text))."""
    return database.obj.one_of(field, values)


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


# Bulk staging: rows that wait in a TEMP table on this connection for one set-based write.
# The engines differ in when a unique index of the staging table is built (SQLite: at
# creation, so a repeated key stays out as it arrives; PostgreSQL: after the rows are in,
# since COPY into a bare table is several times faster), so a caller that cares about
# repeats asks index_staged() once its last row is staged.


def create_staging_table(model) -> None:
    """Create the TEMP table of `model` on this connection."""
    database.obj.create_staging_table(model)


def stage_rows(model, rows: list[tuple], skip_repeats: bool = False) -> None:
    """Append rows (values in the order of the model's fields) in one transaction: SQLite
    executemany (with skip_repeats, a row whose unique key is staged already is left out),
    PostgreSQL COPY (every row goes in)."""
    if rows:
        database.obj.stage_rows(model, rows, skip_repeats)


def staging_stream(model):
    """A context manager giving a function that appends a batch of rows to the staging
    table of `model` (as stage_rows with skip_repeats): SQLite commits each batch as it
    comes; PostgreSQL sends them all through one COPY, ended (and its transaction
    committed) with the block, so every row is in only after it. Inside the block the
    connection runs nothing else: on PostgreSQL another statement would wait for the
    COPY's end, that is forever."""
    return database.obj.staging_stream(model)


def staging_keeps_out_repeats() -> bool:
    """Whether stage_rows(skip_repeats=True) leaves out a repeated unique key as it comes
    (SQLite), rather than index_staged() finding that there were some (PostgreSQL)."""
    return database.obj.staging_keeps_out_repeats


def index_staged(model) -> bool:
    """Make sure the staging table has its indexes, after the last stage_rows: False when a
    unique one could not be built for repeated keys (PostgreSQL only; on SQLite they were
    kept out as they came, so True)."""
    return database.obj.index_staged(model)


def analyze_staged(model) -> None:
    """Give the planner the staged table's statistics before a set-based write from it
    (PostgreSQL ANALYZE; nothing on SQLite)."""
    database.obj.analyze_staged(model)


def replace_foreign_keys(db, model, dropped: list[str]) -> None:
    """For a migration step: make the table of `model` (a frozen model) have the table
    constraints the model describes in place of the foreign keys named in `dropped`
    (PostgreSQL's names), with its rows, inside the step's transaction. PostgreSQL: one
    ALTER TABLE, which checks every row against the new constraints; SQLite, whose ALTER
    TABLE cannot change constraints: the table is made again (core.db.sqlite.rebuild_table).
    `db` is the step's database, which may be a bare engine (tests build old versions so)."""
    target = getattr(db, "obj", db)
    if isinstance(target, SqliteDatabase):
        with db.bind_ctx([model]):
            rebuild_table(db, model)
        return
    from core.db.postgres import replace_foreign_keys as on_postgres

    with db.bind_ctx([model]):
        on_postgres(db, model, dropped)


def drop_temporary_tables(models: list) -> None:
    """Drop staging TEMP tables once their rows are committed (or abandoned), never failing.

    This runs after the commit that matters, so an error here must not turn a committed
    publish or load into a failure. Left behind, the tables only go on taking space in
    this connection's temporary file, and go with the connection; the next staging on it
    drops them first."""
    try:
        database.drop_tables(models)
    except (DatabaseError, *DRIVER_ERRORS):  # peewee's wrapper, or the driver's
        logging.getLogger("bandit.db").warning("could not drop temporary tables", exc_info=True)
