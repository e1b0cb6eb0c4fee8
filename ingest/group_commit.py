"""Group commit: one writer thread stores the metric writes that queue up, many per commit.

With synchronous=FULL every commit waits for the disk, and SQLite takes one writer at a
time, so a web process stores POST /data fastest by handing every write to one thread:
it takes whatever has queued while it was busy, runs each write in its own savepoint
inside one transaction, and commits once. So:

- a write is acknowledged only after the commit that holds it (durability unchanged);
- each write is still all or nothing: a write that fails rolls back to its savepoint and
  its caller gets the exception, while the others in the group commit;
- if the commit itself fails, every write in the group gets that error;
- requests neither open a connection nor wait in SQLite's busy handler (which sleeps in
  steps of up to 100 ms); writers in other processes still queue on busy_timeout_ms.

The thread keeps its connection open while writes keep coming, closes it after a second
without any, and reconnects when open_database has pointed the database at another file.
Never call store from inside a write transaction: the writer would wait for its lock.

`known` holds what writes learned about the database that stays true once committed (the
metric writer's experiment and variant ids): a write's findings become visible to later
writes only after the commit of its group, never when its savepoint or the commit failed,
and all of it is forgotten whenever the writer opens a connection (after open_database,
also at the same path, it always opens a new one).
"""

import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from core.db import configurations, database, is_transient, write_transaction

Work = tuple[Callable[[], Any], Future]
IDLE_CLOSE_S = 1.0
RETRIES = 3  # a whole group again after a deadlock or serialization failure (PostgreSQL)
MAX_KNOWN = 100_000  # facts kept (under 30 MB); past it they are forgotten and read again


class Known:
    """Facts the writer thread learned inside its transactions (only it uses them), by
    key: `learn` stages one for the running write; commit_group keeps a write's staged
    facts when its savepoint is released, drops them when it rolls back, and makes them
    `get`-able only once the group has committed."""

    def __init__(self):
        self.facts: dict = {}
        self.pending: dict = {}  # of this group's released writes, until its commit
        self.staged: dict = {}  # of the running write

    def get(self, key):
        return self.facts.get(key)

    def learn(self, key, value) -> None:
        self.staged[key] = value

    def released(self, ok: bool) -> None:
        if ok:
            self.pending.update(self.staged)
        self.staged.clear()

    def ended(self, committed: bool) -> None:
        if committed:
            if len(self.facts) + len(self.pending) > MAX_KNOWN:  # bounded: start again
                self.facts.clear()
            self.facts.update(self.pending)
        self.pending.clear()
        self.staged.clear()

    def forget(self) -> None:
        self.facts.clear()
        self.ended(False)


class GroupCommit:
    def __init__(self):
        self._queue: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._path = None
        self.known = Known()

    def submit(self, work: Callable[[], Any]) -> Future:
        """Queue work() to run inside the writer's next transaction; its result comes back."""
        future: Future = Future()
        self._queue.put((work, future))
        self._ensure_thread()
        return future

    def _ensure_thread(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="writer", daemon=True)
                self._thread.start()

    def _serve(self) -> None:
        while True:
            group = [self._next()]
            group += drain(self._queue)
            try:
                self._connect()
                commit_group(group, self.known)
            except BaseException as exc:  # no connection: tell every caller, keep serving
                for _, future in group:
                    if not future.done():
                        future.set_exception(exc)

    def _next(self) -> Work:
        try:
            return self._queue.get(timeout=IDLE_CLOSE_S)
        except queue.Empty:
            database.close()
            return self._queue.get()

    def _connect(self) -> None:
        where = (database.obj, database.database, configurations())
        if self._path != where:  # open_database ran meanwhile (pointed elsewhere, or again)
            database.close()
            self._path = where
        if database.is_closed():  # a new connection: nothing learned on the last one is kept
            self.known.forget()
        database.connect(reuse_if_open=True)


def drain(q: queue.SimpleQueue) -> list[Work]:
    taken = []
    while True:
        try:
            taken.append(q.get_nowait())
        except queue.Empty:
            return taken


class Transient(Exception):
    """A write of the group met a deadlock or a serialization failure: run them all again."""


def commit_group(group: list[Work], known: Known | None = None) -> None:
    """One transaction for the group. On PostgreSQL writers on other hosts run at the same
    time (the "ingest" scope takes no lock: every write is an upsert), so two groups can
    deadlock on the same rows; the server then fails one, and that group runs again whole
    (its writes are idempotent), up to RETRIES times, before any caller hears of it."""
    known = known or Known()
    for attempt in range(RETRIES + 1):
        last = attempt == RETRIES
        results = []
        known.ended(False)
        try:
            with write_transaction("ingest"):
                results = [run_in_savepoint(work, known) for work, _ in group]
                if not last and any(e is not None and is_transient(e) for _, e in results):
                    raise Transient
        except Transient:
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
            continue
        except BaseException as exc:  # the commit failed: nothing in the group landed
            if not last and is_transient(exc):
                time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
                continue
            for _, future in group:
                settle(future, error=exc)
            return
        known.ended(True)
        for (_, future), (result, error) in zip(group, results, strict=True):
            settle(future, result, error)
        return


def settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Give the caller its outcome, unless it has given up (its request was cancelled):
    setting a cancelled future raises, which would fail every later write in the group."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def run_in_savepoint(
    work: Callable[[], Any], known: Known | None = None
) -> tuple[Any, BaseException | None]:
    known = known or Known()
    try:
        with database.atomic():  # nested in a transaction: a savepoint
            result = work()
    except Exception as exc:
        known.released(False)
        return None, exc
    known.released(True)
    return result, None
