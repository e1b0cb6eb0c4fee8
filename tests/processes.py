"""Helpers for tests that run the real web server and clock as child processes.

Every wait is bounded; every process a test starts is killed when the test ends (the
`procs` fixture in conftest); servers bind port 0 and report the port they got, so tests
running side by side never collide; all traffic goes to 127.0.0.1.
"""

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

from tests.helpers import ROOT

HOST = "127.0.0.1"
SQLITE_PREFIX = "sqlite:///"


def database_url(target) -> str:
    """The database URL of a test's target: Settings (the `settings` fixture),
    DatabaseSettings, a URL, or the path of a SQLite file (made absolute: children run in
    the project's folder)."""
    target = getattr(target, "database", target)
    target = getattr(target, "url", target)
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")):
        return text
    if text.startswith(SQLITE_PREFIX):
        text = text[len(SQLITE_PREFIX) :]
    return SQLITE_PREFIX + os.path.abspath(text)


def is_postgres(target) -> bool:
    return database_url(target).startswith(("postgresql://", "postgres://"))


def sqlite_path(target) -> Path:
    """The SQLite file of a target (tests about the file itself)."""
    url = database_url(target)
    assert url.startswith(SQLITE_PREFIX), f"not a SQLite database: {url}"
    return Path(url[len(SQLITE_PREFIX) :])


def child_env(target, **extra) -> dict:
    """The environment of a child: ours without BANDIT_ settings, plus BANDIT_DATABASE_URL
    naming the target's database (see database_url), plus the given ones. A given
    BANDIT_DATABASE_PATH replaces the URL (a test of that setting)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDIT_")}
    env.update(PYTHONUNBUFFERED="1", BANDIT_DATABASE_URL=database_url(target))
    if "BANDIT_DATABASE_PATH" in extra and "BANDIT_DATABASE_URL" not in extra:
        del env["BANDIT_DATABASE_URL"]
    env.update({k: str(v) for k, v in extra.items()})
    return env


def writer_pids(parent: int) -> list[int]:
    """The writer processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"ingest.writer_process" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Child:
    """A child process whose stderr and stdout are collected line by line as they come.
    `prefix` runs it under another program (unshare, for a host of its own)."""

    def __init__(
        self, args: list[str], env: dict, new_session: bool = False, prefix: list[str] = ()
    ):
        self.args = args
        self.process = subprocess.Popen(
            [*prefix, sys.executable, *args],
            start_new_session=new_session,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.readers = [
            threading.Thread(target=self._collect, args=(stream,), daemon=True)
            for stream in (self.process.stdout, self.process.stderr)
        ]
        for reader in self.readers:
            reader.start()

    def _collect(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 20) -> re.Match:
        def found():
            if self.process.poll() is not None and not re.search(pattern, self.output):
                raise AssertionError(f"{self.args} exited early:\n{self.output}")
            return re.search(pattern, self.output)

        try:
            return wait_for(found, timeout, f"{pattern!r} from {self.args}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its output so far:\n{self.output[-4000:]}") from None

    def signal(self, number: int) -> None:
        if self.process.poll() is None:
            self.process.send_signal(number)

    def wait(self, timeout: float = 20) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            stream.close()
        return code

    def kill(self) -> None:
        """SIGKILL: no handler runs, no cleanup, like a power cut for the process."""
        self.force_stop()
        self.wait(timeout=10)

    def force_stop(self) -> None:
        self.signal(signal.SIGKILL)


class Server(Child):
    """uvicorn serving the app on a free port it picks itself."""

    def __init__(self, env: dict):
        super().__init__(
            [
                "-m",
                "uvicorn",
                "--factory",
                "api.app:create_app",
                "--host",
                HOST,
                "--port",
                "0",
                "--no-access-log",
            ],
            env,
        )
        self.port = 0

    def wait_ready(self, timeout: float = 30) -> "Server":
        match = self.wait_for_line(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", timeout)
        self.port = int(match.group(1))
        return self

    def request(self, method: str, path: str, payload=None, headers=None, timeout=10):
        """(status, parsed JSON body or raw bytes). Raises OSError if the server is gone."""
        body = json.dumps(payload).encode() if payload is not None else None
        sent = {"content-type": "application/json", **(headers or {})}
        with closing(http.client.HTTPConnection(HOST, self.port, timeout=timeout)) as conn:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            raw = response.read()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw


class WebProcess(Server):
    """`python -m api`, as the Procfile starts it, on a port that was free a moment ago
    (server.port must be 1 to 65535, so not port 0)."""

    def __init__(self, env: dict, port: int = 0):
        if not port:
            with closing(socket.socket()) as probe:
                probe.bind((HOST, 0))
                port = probe.getsockname()[1]
        # Its own process group, so that a kill reaches the workers too.
        env = {**env, "BANDIT_SERVER_PORT": str(port)}
        Child.__init__(self, ["-m", "api"], env, new_session=True)
        self.port = 0

    def force_stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes under it (none when server.workers is 1)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        # multiprocessing's resource tracker is a child too; the workers are spawned.
        return [int(c) for c in children if b"spawn_main" in self.command_line(c)]

    @staticmethod
    def command_line(pid: str) -> bytes:
        try:
            return Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            return b""


class HostChild(Child):
    """A child on a host of its own: in a new UTS namespace named `host` and a new pid
    namespace, in which it is pid 1, as a process on another machine would be. It shares
    only the loopback and the database server's socket with us (unshare needs root)."""

    def __init__(self, host: str, args: list[str], env: dict):
        script = 'hostname "$0" && exec "$@"'
        prefix = ["unshare", "--uts", "--pid", "--fork", "--kill-child", "--", "sh", "-c"]
        super().__init__(args, env, prefix=[*prefix, script, host])
        self.host = host

    def inner_pid(self) -> int | None:
        """The process unshare forked (the child itself), as we see it; None once gone."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            return None
        return int(children[0]) if children else None

    def signal(self, number: int) -> None:
        """To the child itself: unshare passes no signal on (SIGKILL of unshare kills the
        child too, by --kill-child)."""
        inner = wait_for(self.inner_pid, 10, f"the process unshare starts on {self.host}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(inner, number)

    def force_stop(self) -> None:
        inner = self.inner_pid()
        if inner is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(inner, signal.SIGKILL)
        Child.signal(self, signal.SIGKILL)


class Processes:
    """Starts children and guarantees they are gone when the test ends."""

    def __init__(self):
        self.children: list[Child] = []

    def server(self, env: dict) -> Server:
        return self._track(Server(env)).wait_ready()

    def web(self, env: dict, port: int = 0) -> WebProcess:
        """`python -m api`; on `port` if given (a restart on the port it had)."""
        return self._track(WebProcess(env, port)).wait_ready()

    def start(self, args: list[str], env: dict, prefix: list[str] = ()) -> Child:
        return self._track(Child(args, env, prefix=prefix))

    def on_host(self, host: str, args: list[str], env: dict) -> "HostChild":
        """A child on a host of its own (HostChild)."""
        return self._track(HostChild(host, args, env))

    def _track(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def kill_all(self) -> None:
        for child in self.children:
            child.force_stop()
            child.wait(timeout=10)


def run_once(procs: Processes, env: dict, timeout: float = 60) -> Child:
    child = procs.start(["-m", "scheduler", "run-once"], env)
    child.wait(timeout)
    return child


def query(target, sql: str, *params) -> list[tuple]:
    """Read the database the way an operator would, outside the app's code, on either
    engine. SQL is written for sqlite3 (`?` placeholders) and kept portable; on PostgreSQL
    the placeholders become psycopg's and values read as sqlite3 gives them: dates and
    timestamps as ISO text, numeric as int when whole, else float."""
    if not is_postgres(target):
        with closing(sqlite3.connect(sqlite_path(target), timeout=10)) as conn:
            return conn.execute(sql, params).fetchall()
    with closing(postgres_connection(target)) as conn:
        return conn.execute(sql.replace("%", "%%").replace("?", "%s"), params).fetchall()


def postgres_connection(target):
    """A connection to the target's PostgreSQL database (autocommit) whose values read as
    the app's own connections read them (core/db/postgres.py's loaders)."""
    import psycopg

    from core.db.postgres import DateText, NumericNumber, TimestampText

    conn = psycopg.connect(database_url(target), autocommit=True)
    for name, loader in (("date", DateText), ("timestamp", TimestampText)):
        conn.adapters.register_loader(name, loader)
    conn.adapters.register_loader("numeric", NumericNumber)
    return conn


@contextlib.contextmanager
def write_lock(target):
    """Another connection holding the write lock that runs and publishes take, as a long
    publish would: SQLite's one write lock (BEGIN IMMEDIATE), or on PostgreSQL the advisory
    locks of the "runs" and "global" scopes (which POST /data never waits on: it takes no
    lock there)."""
    if not is_postgres(target):
        path = sqlite_path(target)
        with closing(sqlite3.connect(path, timeout=10, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")
            yield holder
            holder.execute("ROLLBACK")
        return
    from core.db.postgres import LOCK_CLASS, SCOPES

    with closing(postgres_connection(target)) as holder:
        holder.execute("BEGIN")
        for scope in ("runs", "global"):
            holder.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, SCOPES[scope]))
        yield holder
        holder.execute("ROLLBACK")
