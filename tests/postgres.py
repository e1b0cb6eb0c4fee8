"""A throwaway PostgreSQL cluster for the tests, started from the installed server binaries.

    cluster = Cluster().start()              # initdb into a temporary folder, pg_ctl start
    cluster.create_template("migrated", run_migrations)   # run_migrations(url), once
    url = cluster.clone("migrated")          # a fresh database per test, in milliseconds
    ...                                      # psycopg.connect(url), or the app's settings
    cluster.drop(url)
    cluster.stop()                           # pg_ctl -m immediate stop, folder removed

The cluster listens on a unix socket only (listen_addresses=''), in its own temporary
folder, so it never takes a TCP port and two test sessions (or xdist workers) never meet.
It runs with fsync, synchronous_commit and full_page_writes off: nothing here survives a
crash, nor needs to. Authentication is `trust` for the database user `bandit`.

URLs are libpq connection URIs, which psycopg 3 (and peewee's playhouse.db_url) accept:

    postgresql://bandit@/t3?host=%2Fdev%2Fshm%2Fbandit-pg-k2j1x9&port=5432

The socket folder goes in the `host` parameter, percent-encoded; the port is given because
it names the socket file (`.s.PGSQL.5432`) and a PGPORT in the environment would otherwise
pick another name. Database names are plain identifiers (t1, t2, ...), never encoded:
playhouse.db_url does not percent-decode the path.

Running as root (CI, containers): initdb refuses to, so initdb and pg_ctl run as the
`postgres` user through `runuser -u postgres --`, and the temporary folder is chowned to
it. Its parent (parent_folder(): $BANDIT_PG_TMPDIR, else /dev/shm with 1 GB free, else
tempfile.gettempdir()) must be traversable by that user; /dev/shm and /tmp are. Root
connects through the socket whatever its mode. As any other user, initdb and pg_ctl run
directly, as that user.

The binaries are looked for in: $BANDIT_PG_BIN (when set, only there), `pg_config
--bindir`, the highest /usr/lib/postgresql/<version>/bin (Debian's layout), then PATH.

A postmaster outlives a test process killed with SIGKILL (pg_ctl detaches it): stop() runs
from the pytest fixture's teardown (Ctrl-C included), from atexit, and on a SIGTERM
(require_cluster's handler), not after a kill -9. Such a leftover shows in `ps -u
postgres`, its folder /dev/shm/bandit-pg-* (or in /tmp): stop it with
`runuser -u postgres -- pg_ctl -D <folder>/data -m immediate stop`, then remove the folder.

Measured on the development container (2 cores shared with other test runs, PostgreSQL 15,
as root, the folder in /dev/shm; medians of 5 clusters x 20 clones, `python
tests/postgres.py`, ranges over 3 such runs):
    initdb 0.36-0.54 s, start (pg_ctl -w) 0.12-0.13 s, stop 0.12 s: once per session;
    create_template (one table) 36-70 ms: once per template;
    clone 7.5-10 ms and drop 4-6 ms: per test, for a template of one table (7.7 MB, nearly
    all of it the system catalogs: a migrated schema adds little).
On this machine's ext4 disk (/tmp) a clone took 100-390 ms instead, hence /dev/shm.
CREATE DATABASE uses STRATEGY FILE_COPY (a checkpoint, then a file copy), which was faster
here than PostgreSQL 15's default WAL_LOG (it writes the 7.7 MB through the WAL).

This module needs psycopg 3 and nothing of pytest, except require_cluster(), which turns
missing binaries into a skip (a failure under CI).
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

USER = "bandit"  # the database superuser initdb creates
PORT = 5432  # names the socket file only; the socket folder is private to the cluster
SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    # The process tests open a pool per child process, some tests many threads at once.
    "max_connections": "200",
    # In data/pg_dynshmem, removed with the folder: an immediate stop leaves the segments
    # behind, and posix ones would pile up in /dev/shm.
    "dynamic_shared_memory_type": "mmap",
}
NOT_FOUND = (
    "PostgreSQL server binaries not found (looked in $BANDIT_PG_BIN, pg_config --bindir, "
    "/usr/lib/postgresql/*/bin, PATH): the PostgreSQL half of the suite is skipped; install "
    "the postgresql package (Debian: apt-get install postgresql) or set BANDIT_PG_BIN"
)
TRUE = {"1", "true", "yes", "on"}
SHM = Path("/dev/shm")
SHM_NEEDED = 1 << 30  # a cluster is 40 MB, each clone of a small template 8 MB


def parent_folder() -> Path:
    """Where the cluster's folder goes: $BANDIT_PG_TMPDIR, else /dev/shm when it is a
    tmpfs with 1 GB free (clones are 10 times faster there than on this machine's disk;
    a container's default /dev/shm is 64 MB, too small), else tempfile.gettempdir()."""
    if os.environ.get("BANDIT_PG_TMPDIR"):
        return Path(os.environ["BANDIT_PG_TMPDIR"])
    if SHM.is_dir() and os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free >= SHM_NEEDED:
        return SHM
    return Path(tempfile.gettempdir())


def is_bindir(folder: str | Path | None) -> bool:
    return bool(folder) and all((Path(folder) / name).is_file() for name in ("initdb", "pg_ctl"))


def find_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None (see the module docstring's order)."""
    if "BANDIT_PG_BIN" in os.environ:
        chosen = os.environ["BANDIT_PG_BIN"]
        return Path(chosen) if is_bindir(chosen) else None
    if shutil.which("pg_config"):
        # pg_config also comes with the client headers alone (libpq-dev): check for initdb.
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if done.returncode == 0 and is_bindir(done.stdout.strip()):
            return Path(done.stdout.strip())
    versions = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if is_bindir(p)]
    numbered = [p for p in versions if re.fullmatch(r"\d+(\.\d+)?", p.parent.name)]
    if numbered:
        return max(numbered, key=lambda p: tuple(map(int, p.parent.name.split("."))))
    initdb = shutil.which("initdb")  # resolved: /usr/local/bin/initdb may be a symlink
    if initdb and is_bindir(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    return None


def truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUE


def postgres_required() -> bool:
    """Under CI (CI=true, as CI services set it) or BANDIT_REQUIRE_POSTGRES=1, missing
    binaries are a failure: .ci/run installs them."""
    return truthy("CI") or truthy("BANDIT_REQUIRE_POSTGRES")


def require_bindir() -> Path:
    """The binaries' folder; else pytest.skip, or pytest.fail when postgres_required()."""
    bindir = find_bindir()
    if bindir is None:
        import pytest

        (pytest.fail if postgres_required() else pytest.skip)(NOT_FOUND)
    return bindir


def require_cluster() -> Cluster:
    """A started cluster, for a session fixture (the caller stops it). A SIGTERM (say,
    from `timeout`) stops it too, when nothing else handles that signal: atexit does not run
    on one."""
    cluster = Cluster(require_bindir()).start()
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:

        def stop_then_die(signum, frame):
            cluster.stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop_then_die)
    return cluster


class Cluster:
    """One PostgreSQL cluster in a temporary folder: data/, the socket, and the server log."""

    def __init__(
        self,
        bindir: str | Path | None = None,
        *,
        os_user: str = "postgres",
        durable: bool = False,
        parent: str | Path | None = None,
    ) -> None:
        found = Path(bindir) if bindir else find_bindir()
        if not is_bindir(found):
            raise FileNotFoundError(NOT_FOUND)
        self.bindir = found
        self.as_root = os.geteuid() == 0
        self.os_user = os_user  # used only when running as root
        # durable: fsync, synchronous_commit and full_page_writes at their defaults (on), for
        # benchmarks that compare with a SQLite file synced to the same disk; parent: the
        # folder the cluster's own goes in (default parent_folder(), often a tmpfs, where a
        # sync costs nothing).
        self.durable = durable
        self.parent = Path(parent) if parent else None
        self.folder: Path | None = None
        self._admin: psycopg.Connection | None = None
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # --- life cycle

    def start(self) -> Cluster:
        """initdb and pg_ctl -w start; returns self. Raises RuntimeError with the output."""
        if self.folder is not None:
            return self
        try:
            self.initdb()
            self.launch()
        except BaseException:
            self.stop()
            raise
        return self

    def initdb(self) -> None:
        """The temporary folder (the postgres user's, as root) and initdb in it: step 1."""
        parent = self.parent or parent_folder()
        self.folder = Path(tempfile.mkdtemp(prefix="bandit-pg-", dir=parent))
        atexit.register(self.stop)
        if self.as_root:
            account = pwd.getpwnam(self.os_user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self._run(
            "initdb", "--no-sync", "-U", USER, "--auth=trust", "-E", "UTF8",
            "--locale=C", "-D", self.data,
        )  # fmt: skip
        # Appended as root too: the file stays the postgres user's (0600, its owner).
        with open(Path(self.data) / "postgresql.conf", "a") as conf:
            conf.write("\n# tests/postgres.py\n")
            conf.write(f"unix_socket_directories = '{self.socket_dir}'\n")
            conf.writelines(f"{name} = {value}\n" for name, value in self.settings().items())

    def settings(self) -> dict[str, str]:
        """What postgresql.conf gets: SETTINGS, with the durability ones left on if durable."""
        if not self.durable:
            return SETTINGS
        undurable = ("fsync", "synchronous_commit", "full_page_writes")
        return {k: v for k, v in SETTINGS.items() if k not in undurable}

    def launch(self) -> None:
        """pg_ctl -w start: step 2, after initdb()."""
        self._run("pg_ctl", "-w", "-t", "60", "-D", self.data, "-l", self.log, "start")

    def stop(self) -> None:
        """pg_ctl -m immediate stop and remove the folder; safe to call twice."""
        atexit.unregister(self.stop)
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        folder, self.folder = self.folder, None
        if folder is None:
            return
        if (folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-w", "-D", str(folder / "data"), "-m", "immediate", "stop",
                      check=False)  # fmt: skip
        # The last server processes may still be removing their files: try again a while.
        for _ in range(50):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                break
            time.sleep(0.1)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- databases

    @property
    def socket_dir(self) -> str:
        if self.folder is None:
            raise RuntimeError("the cluster is not started")
        return str(self.folder)

    @property
    def data(self) -> str:
        return f"{self.socket_dir}/data"

    @property
    def log(self) -> str:
        return f"{self.socket_dir}/server.log"

    def url(self, dbname: str = "postgres") -> str:
        """postgresql://bandit@/<dbname>?host=<socket folder, percent-encoded>&port=5432"""
        host = quote(self.socket_dir, safe="")
        return f"postgresql://{USER}@/{quote(dbname, safe='')}?host={host}&port={PORT}"

    def create_template(self, name: str, prepare: Callable[[str], None]) -> str:
        """Create database `name`, call prepare(its url) (say, run the migrations), then make
        it a template nobody can connect to; returns name, for clone(name)."""
        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            prepare(self.url(name))
            # A connection left open by prepare would make every clone fail ("source
            # database is being accessed by other users"): end it.
            self.terminate(name)
            self.execute(
                sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                    sql.Identifier(name)
                )
            )
        except BaseException:
            self.drop(self.url(name))
            raise
        return name

    def clone(self, template: str) -> str:
        """A new database t<N> copied from the template; returns its url."""
        with self._lock:
            name = f"t{next(self._names)}"
        self.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        )
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the url's database, a template too, ending its connections first (FORCE)."""
        name = conninfo_to_dict(url)["dbname"]
        target = sql.Identifier(name)
        if self.execute("SELECT 1 FROM pg_database WHERE datname = %s AND datistemplate", [name]):
            self.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(target))
        self.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(target))

    def terminate(self, dbname: str) -> None:
        """End every connection to dbname, and wait (up to 5 s each) until they are gone."""
        self.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [dbname],
        )

    def databases(self) -> list[str]:
        return [row[0] for row in self.execute("SELECT datname FROM pg_database ORDER BY 1")]

    def execute(self, statement, params=None) -> list[tuple]:
        """One statement on the cluster's own autocommit connection to `postgres` (CREATE
        and DROP DATABASE cannot run in a transaction); the rows, if it returns any."""
        with self._lock:
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(self.url(), autocommit=True)
            cursor = self._admin.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    # --- the server binaries

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", self.os_user, "--", *command]
        # PGDATA, PGPORT, PGHOST... of the caller's environment must not steer the cluster.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        # cwd: the postgres user may not be able to enter the caller's folder.
        done = subprocess.run(
            command, cwd=self.folder, env=env, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            log = Path(self.log).read_text()[-2000:] if Path(self.log).exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}{log}"
            )
        return done


def timings(runs: int = 5, clones: int = 20) -> dict[str, float]:
    """Median seconds of each step over `runs` clusters (python tests/postgres.py)."""
    import statistics

    steps: dict[str, list[float]] = {}

    def timed(step: str, call: Callable[[], object]) -> object:
        began = time.perf_counter()
        result = call()
        steps.setdefault(step, []).append(time.perf_counter() - began)
        return result

    def one_table(url: str) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL)")

    for _ in range(runs):
        cluster = Cluster()
        try:
            timed("initdb", cluster.initdb)
            timed("start", cluster.launch)
            timed("create_template", lambda c=cluster: c.create_template("tpl", one_table))
            for _ in range(clones):
                url = timed("clone", lambda c=cluster: c.clone("tpl"))
                timed("drop", lambda c=cluster, u=url: c.drop(u))
            timed("stop", cluster.stop)
        finally:
            cluster.stop()
    return {step: statistics.median(values) for step, values in steps.items()}


if __name__ == "__main__":
    for step, seconds in timings().items():
        print(f"{step}: {seconds * 1000:.1f} ms")
