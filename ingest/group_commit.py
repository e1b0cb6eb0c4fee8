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
"""

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from core.db import database, write_transaction

Work = tuple[Callable[[], Any], Future]
IDLE_CLOSE_S = 1.0


class GroupCommit:
    def __init__(self):
        self._queue: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._path = None

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
                commit_group(group)
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
        if self._path != database.database:  # open_database pointed elsewhere meanwhile
            database.close()
            self._path = database.database
        database.connect(reuse_if_open=True)


def drain(q: queue.SimpleQueue) -> list[Work]:
    taken = []
    while True:
        try:
            taken.append(q.get_nowait())
        except queue.Empty:
            return taken


def commit_group(group: list[Work]) -> None:
    results = []
    try:
        with write_transaction():
            results = [run_in_savepoint(work) for work, _ in group]
    except BaseException as exc:  # the commit failed: nothing in the group landed
        for _, future in group:
            settle(future, error=exc)
        return
    for (_, future), (result, error) in zip(group, results, strict=True):
        settle(future, result, error)


def settle(future: Future, result=None, error: BaseException | None = None) -> None:
    """Give the caller its outcome, unless it has given up (its request was cancelled):
    setting a cancelled future raises, which would fail every later write in the group."""
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def run_in_savepoint(work: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    try:
        with database.atomic():  # nested in a transaction: a savepoint
            return work(), None
    except Exception as exc:
        return None, exc
