"""The PostgreSQL engine: one database shared by web processes and clocks on several hosts
(core.db uses this; nothing else does).

SQLite gives one global write lock (BEGIN IMMEDIATE), and every guarantee between
processes rested on it. Here each guarantee has its own mechanism:

- a write that checks before it writes (a run's start, a publish, an experiment's
  settings or archive, the migrations) takes a transaction-scoped advisory lock of its
  scope first, so two hosts cannot both pass the check; POST /data takes none (its
  writes are upserts, race-free by ON CONFLICT) and so does not wait behind a publish
  (except a POST that creates an experiment or arm: it takes the next serving-counter
  value, whose row a publish holds from its last step to its commit);
- a run's liveness is a session advisory lock its process holds on a connection of its
  own: the server frees it the moment that session ends, on whatever host it ran;
- leases are stamped and judged by the database's clock, not each host's;
- a publish notifies (NOTIFY bandit_serving) in its own transaction, so every web process
  listening hears of it at the commit.

Column types: peewee's FloatField is float4 here and its IntegerField int4, where SQLite
stores doubles and 64-bit integers; this engine maps both to the SQLite meaning (DOUBLE
PRECISION, BIGINT), so the same models and migration steps give the same values.
"""

import contextlib
import glob
import logging
import os
import shutil
import socket
import subprocess
from datetime import datetime
from typing import ClassVar

import psycopg
from peewee import Cast, DatabaseError, Expression, IntegrityError, InterfaceError, Value, fn
from playhouse.pool import MaxConnectionsExceeded, PooledPostgresqlDatabase
from psycopg.adapt import Loader

from core.db.health import BackupError, DatabaseFault, ThreadState
from core.settings import redacted

log = logging.getLogger("bandit.db")

LOCK_CLASS = 0x62616E64  # "band": the first key of every advisory lock this service takes
# Scopes of write_transaction: "migrate" and "runs" have locks of their own; a publish, a
# settings or archive change and any other check-then-write share "global", which is what
# SQLite's one write lock is for every scope.
SCOPES = {"migrate": 1, "runs": 2, "global": 5, "clock": 6}
RUN_CLASS = 0x62616E65  # session locks held for a run's life, second key the run id
CHANNEL = "bandit_serving"
POOL_SIZE = 48  # the request thread pool (40) and the writer, refresher and lease threads
POOL_WAIT_S = 30

# SQLSTATE classes: a lock wait past lock_timeout (55P03), a statement cancelled (57014);
# a deadlock (40P01) or a serialization failure (40001), which a retry of the whole
# transaction settles.
BUSY = {"55P03", "57014"}
TRANSIENT = {"40P01", "40001"}
# What the server says about its storage or its own availability.
STORAGE = {
    "53100": "the database server's disk is full",
    "53200": "the database server is out of memory",
    "53300": "the database server has too many connections",
    "57P01": "the database server was shut down",
    "57P03": "the database server is starting up or shutting down",
    "58030": "the database server met an I/O error",
    "XX001": "the database server found a corrupt data page",
    "XX002": "the database server found a corrupt index",
    "25006": "the database is read-only (a standby, or default_transaction_read_only)",
}


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg error, also inside peewee's wrapper (which raises its own
    error while handling the driver's: the driver's is then its __context__)."""
    candidates = (exc, exc.args[0] if exc.args else None, exc.__cause__, exc.__context__)
    for candidate in candidates:
        state = getattr(candidate, "sqlstate", None)
        if state:
            return state
    return None


class DateText(Loader):
    """A date as the text SQLite returns for it ("2025-12-22"): raw rows read the same on
    both engines, and peewee's DateField parses the text as it does SQLite's."""

    def load(self, data) -> str:
        return bytes(data).decode()


class TimestampText(Loader):
    """A timestamp as sqlite3 stores it, isoformat(" "): PostgreSQL drops trailing zeros
    of the fraction ("...:00.5"), Python writes six digits ("...:00.500000")."""

    def load(self, data) -> str:
        text = bytes(data).decode()
        whole, dot, fraction = text.partition(".")
        return f"{whole}.{fraction.ljust(6, '0')}" if dot else whole


class NumericNumber(Loader):
    """numeric (SUM of bigint, for one) as SQLite gives it: an int when whole, else a float."""

    def load(self, data):
        text = bytes(data).decode()
        try:
            return int(text)
        except ValueError:
            return float(text)


def server_tool(name: str) -> str:
    """A PostgreSQL client program (pg_dump, pg_restore): on PATH, else the newest Debian
    server's bin folder."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if not candidates:
        raise BackupError(
            f"{name} not found: install the PostgreSQL client programs (Debian: the"
            " postgresql-client package), of the server's major version or newer"
        )
    return candidates[-1]


def dump_server_database(url: str, partial) -> None:
    """pg_dump --format=custom of the database at url into partial (one snapshot; writers
    go on), then pg_restore --list as the check that the archive reads back."""
    for command in (
        [server_tool("pg_dump"), "--format=custom", f"--file={partial}", f"--dbname={url}"],
        [server_tool("pg_restore"), "--list", str(partial)],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            program = os.path.basename(command[0])
            raise BackupError(f"{program} failed: {done.stderr.strip() or done.returncode}")
    listing = done.stdout
    if "TABLE DATA" not in listing:
        raise BackupError("the dump holds no table data: is this the service's database?")


def options_of(settings) -> str:
    """Session settings of every connection: lock waits bounded as SQLite's busy timeout."""
    return f"-c lock_timeout={int(settings.busy_timeout_ms)} -c TimeZone=UTC"


# The database's identity: the cluster's system identifier and the database's oid.
IDENTITY = (
    "SELECT (SELECT system_identifier FROM pg_control_system()),"
    " (SELECT oid FROM pg_database WHERE datname = current_database())"
)
LOCK_BATCH = 10_000  # keys per SELECT ... FOR UPDATE


class PostgresDatabase(PooledPostgresqlDatabase):
    engine = "postgresql"
    dialect = "postgresql"
    field_types: ClassVar[dict] = {
        **PooledPostgresqlDatabase.field_types,
        "FLOAT": "DOUBLE PRECISION",
        "INT": "BIGINT",
    }
    url: str | None = None
    options: str | None = None
    identity: tuple | None = None
    path = None  # no file: nothing to pin by inode

    def setup(self, settings, create: bool = False) -> None:
        if (
            self.database is not None
            and self.url == settings.url
            and self.options == options_of(settings)
        ):
            return  # the same database again (a second open in one process): keep the pool
        if self.database is not None:
            self.close_all()  # pooled connections belong to the database they were made for
        self.options = options_of(settings)
        self.url = settings.url
        self.identity = None
        self.init(
            settings.url,
            prefer_psycopg3=True,
            max_connections=POOL_SIZE,
            timeout=POOL_WAIT_S,
            stale_timeout=600,
            options=self.options,
            application_name=f"bandit-api {socket.gethostname()}:{os.getpid()}",
        )

    def describe(self) -> str:
        return f"PostgreSQL database {redacted(self.url or '')}"

    # -- the database's identity: a server that answers with another (empty) database
    # after a restore or a DNS change must not take acknowledged writes.

    def read_identity(self) -> tuple:
        return tuple(int(v) for v in self.execute_sql(IDENTITY).fetchone())

    def pin(self, path=None) -> None:
        self.identity = self.read_identity()

    def check_identity(self) -> None:
        pass  # checked once per new connection, in _connect

    def note_fault(self, exc: BaseException) -> None:
        from core.db.health import health

        cause = self.storage_fault(exc)
        if cause:
            health.failed(cause)
            self.local.faulted = True

    local = ThreadState()

    def reopen(self) -> None:
        pass

    def fold_wal(self) -> None:
        pass

    def _connect(self):
        try:
            conn = super()._connect()
        except psycopg.OperationalError as exc:
            raise DatabaseFault(f"{self.describe()} cannot be reached: {exc}".strip()) from exc
        for name, loader in (("date", DateText), ("timestamp", TimestampText)):
            conn.adapters.register_loader(name, loader)
        conn.adapters.register_loader("numeric", NumericNumber)
        if self.identity is not None:
            with conn.cursor() as cursor:
                found = tuple(int(v) for v in cursor.execute(IDENTITY).fetchone())
            if found != self.identity:
                conn.close()
                raise DatabaseFault(
                    f"{self.describe()} is not the database this process opened at start (it"
                    " was dropped and made again, or restored, or the name now points at"
                    " another server); restart to use it"
                )
        return conn

    # -- transactions and locks

    def replace_broken_connection(self) -> None:
        """A thread that keeps its connection (the POST /data writer does) would go on
        using it after the server closed it (a restart, a failover): every write refused
        until the thread idles. Before a transaction, such a connection is given back (the
        pool drops it) and a new one taken."""
        conn = self._state.conn
        if conn is not None and not self._state.closed and (conn.closed or conn.broken):
            self.close()
            self.connect()

    @contextlib.contextmanager
    def write_atomic(self, scope: str):
        if self.transaction_depth() == 0:
            self.replace_broken_connection()
        wait, self.local.lock_wait_ms = self.local.lock_wait_ms, None
        with self.atomic() as transaction:
            if wait is not None:  # for this transaction only: the connection is pooled
                self.execute_sql(f"SET LOCAL lock_timeout = {int(wait)}")
            if scope != "ingest":  # upserts: no lock, so POST /data does not queue on a publish
                key = SCOPES.get(scope, SCOPES["global"])
                self.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, key))
            yield transaction

    def read_atomic(self):
        return self.atomic("REPEATABLE READ")

    def lock_wait(self, milliseconds: int) -> None:
        """For this thread's next write transaction (a session setting would stay with the
        pooled connection and its next user)."""
        self.local.lock_wait_ms = milliseconds

    def position_in(self, text, part):
        return fn.strpos(text, Cast(part, "text"))

    def days_between(self, later, earlier):
        return Cast(later, "date") - earlier

    plain_inserts_pay = True  # core.db.plain_inserts_pay

    def one_of(self, field, values: list[int]):
        return Expression(field, "=", fn.ANY(Value(values, unpack=False)))

    def is_busy(self, exc: BaseException) -> bool:
        """A lock wait past lock_timeout, a full pool, or a deadlock or serialization
        failure that outlived its retries: all settled by trying again shortly."""
        state = sqlstate(exc)
        return state in BUSY or state in TRANSIENT or isinstance(exc, MaxConnectionsExceeded)

    def is_transient(self, exc: BaseException) -> bool:
        return sqlstate(exc) in TRANSIENT

    def storage_fault(self, exc: BaseException) -> str | None:
        if isinstance(exc, DatabaseFault):
            return str(exc)
        state = sqlstate(exc)
        if state in STORAGE:
            return f"{STORAGE[state]} ({exc})".strip()
        driver = exc.__context__ if isinstance(exc, DatabaseError) else exc  # peewee's wrapper
        if state is None and isinstance(
            driver, (psycopg.OperationalError, psycopg.InterfaceError, InterfaceError)
        ):
            return f"the database server cannot be reached ({exc})".strip()
        if state and state.startswith("08"):  # connection exceptions
            return f"the connection to the database server failed ({exc})".strip()
        return None

    def integrity_problem(self) -> str | None:
        """The server checks its own pages (data_checksums); a query that cannot run is the
        problem to report."""
        try:
            self.execute_sql("SELECT 1").fetchone()
        except (DatabaseError, psycopg.Error) as exc:
            return str(exc)
        return None

    # -- runs across hosts

    listens = True

    def lock_rows(self, model, pks: list[int]) -> None:
        """SELECT ... FOR UPDATE in slices of ascending keys: a statement binds at most
        65,535 parameters (a bulk load may add arms to more experiments than that), and
        the order stays the same."""
        ordered = sorted(pks)
        for start in range(0, len(ordered), LOCK_BATCH):
            batch = ordered[start : start + LOCK_BATCH]
            query = model.select(model.id).where(model.id.in_(batch))
            query.order_by(model.id).for_update().execute()

    def lease_now(self, now) -> datetime:
        return self.database_now()

    def database_now(self) -> datetime:
        """The database server's clock (naive UTC): the one clock every host shares."""
        text = self.execute_sql("SELECT now() AT TIME ZONE 'UTC'").fetchone()[0]
        return datetime.fromisoformat(text)

    def hold_run(self, run_id: int):
        """A connection of its own holding the run's session lock until closed: the server
        frees the lock when that session ends, however the process ended."""
        conn = psycopg.connect(self.url, autocommit=True, application_name="bandit-api run")
        conn.execute("SELECT pg_advisory_lock(%s, %s)", (RUN_CLASS, run_id))
        return conn

    def holder_is_gone(self, holder: str | None, run_id: int | None = None) -> bool:
        if run_id is None:
            return False
        taken = self.execute_sql(
            "SELECT pg_try_advisory_lock(%s, %s)", (RUN_CLASS, run_id)
        ).fetchone()[0]
        if taken:
            self.execute_sql("SELECT pg_advisory_unlock(%s, %s)", (RUN_CLASS, run_id))
        return bool(taken)

    def temporary_tables(self) -> list[str]:
        rows = self.execute_sql(
            "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'"
            " AND pg_table_is_visible(oid)"
        )
        return sorted(name for (name,) in rows)

    # -- bulk staging in TEMP tables (ingest/staging.py, scheduler/publish.py)

    staging_keeps_out_repeats = False

    def create_staging_table(self, model) -> None:
        """The table and its primary key only: COPY into it is several times faster than
        into one with a unique index, which index_staged builds once every row is in.
        TEMPORARY as the model says (the schema manager does not read Meta.temporary: a
        plain CREATE TABLE would be shared by every session, and every concurrent load)."""
        model._schema.create_table(temporary=model._meta.temporary)

    def stage_rows(self, model, rows: list[tuple], skip_repeats: bool = False) -> None:
        """COPY ... FROM STDIN. Every row goes in (the unique indexes come later, with
        index_staged), so skip_repeats has nothing to skip here."""
        columns = ", ".join(f'"{f.column_name}"' for f in model._meta.sorted_fields)
        statement = f'COPY "{model._meta.table_name}" ({columns}) FROM STDIN'
        with self.atomic(), self.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    @contextlib.contextmanager
    def staging_stream(self, model):
        """One COPY for every batch, in one transaction, ended when the block is: the
        server takes in each batch while the caller reads and checks the next (one COPY
        per batch waited for each to end)."""
        columns = ", ".join(f'"{f.column_name}"' for f in model._meta.sorted_fields)
        statement = f'COPY "{model._meta.table_name}" ({columns}) FROM STDIN'
        with self.atomic(), self.cursor().copy(statement) as copy:

            def write(rows: list[tuple]) -> None:
                for row in rows:
                    copy.write_row(row)

            yield write

    def index_staged(self, model) -> bool:
        """Build the model's indexes now; False when a unique one met a repeated key (then
        the table has none, and the caller looks for the repeats itself)."""
        try:
            with self.atomic():
                model._schema.create_indexes()
        except IntegrityError:
            return False
        return True

    def analyze_staged(self, model) -> None:
        """Statistics for the planner: a TEMP table has none (autovacuum never sees it), and
        a million rows joined on a guess of a thousand gets a nested loop."""
        self.execute_sql(f'ANALYZE "{model._meta.table_name}"')

    # -- change notification

    def notify_serving(self, version: int) -> None:
        """Delivered to listeners at the commit of the calling transaction, never on rollback."""
        self.execute_sql("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))

    def listener(self):
        """A connection of its own (LISTEN needs a session, not a pooled one) subscribed to
        the serving channel."""
        conn = psycopg.connect(self.url, autocommit=True, application_name="bandit-api cache")
        conn.execute(f"LISTEN {CHANNEL}")
        return conn


def replace_foreign_keys(db, model, dropped: list[str]) -> None:
    """Drop the named constraints of `model`'s table and add the model's table constraints
    (its Meta.constraints) in one ALTER TABLE, which checks the rows against what it adds."""
    table = model._meta.table_name
    changes = [f'DROP CONSTRAINT "{name}"' for name in dropped]
    changes += [f"ADD {db.get_sql_context().sql(c).query()[0]}" for c in model._meta.constraints]
    db.execute_sql(f'ALTER TABLE "{table}" {", ".join(changes)}')
