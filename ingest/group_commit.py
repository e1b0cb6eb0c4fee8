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

A write may also offer to run jointly (`jointly`, below): when every write of a group
can, and all of them name the same function, the group is that function run once for all
their rows of values (one upsert statement) in one transaction, with no savepoints. Any error but
a busy lock or a storage fault (which every write would meet alike) then runs the group
again write by write, each in its savepoint as above, so each is still all or nothing
and only a failing write hears of its error.

A caller on an event loop passes an asyncio future of its loop to `submit`: the writer
settles all of a group's futures of one loop with one call_soon_threadsafe (one wake-up
of the loop per group, not one per write). Any future with get_loop() is settled that
way, through whatever it returns (the writer process's channel, ingest/writer_process.py).

`known` holds what writes learned about the database that stays true once committed (the
metric writer's experiment and variant ids): a write's findings become visible to later
writes only after the commit of its group, never when its savepoint or the commit failed,
and all of it is forgotten whenever the writer opens a connection (after open_database,
also at the same path, it always opens a new one).
"""

import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from core.db import (
    configurations,
    database,
    is_busy,
    is_transient,
    storage_fault,
    write_transaction,
)

Work = tuple[Callable[[], Any], Any]  # the work, and the future its outcome goes to
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

    def submit(self, work: Callable[[], Any], future=None):
        """Queue work() to run inside the writer's next transaction; its result comes back
        in `future` (by default a new Future), which is returned."""
        future = Future() if future is None else future
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
            self.serve_group(group)

    def serve_group(self, group: list[Work], jointly: bool = True) -> None:
        """Commit one group and settle its futures (the writer thread's loop, or a caller
        that takes the writes from elsewhere: the writer process); jointly=False when the
        caller knows they must run one by one."""
        outcomes = Outcomes()
        try:
            self.connect()
            commit_group(group, self.known, outcomes, jointly)
        except BaseException as exc:  # no connection: tell every caller, keep serving
            for _, future in group:
                outcomes.settle(future, error=exc)
        outcomes.deliver()

    def idle(self) -> None:
        """No write for IDLE_CLOSE_S: the connection is closed until the next."""
        database.close()

    def _next(self) -> Work:
        try:
            return self._queue.get(timeout=IDLE_CLOSE_S)
        except queue.Empty:
            self.idle()
            return self._queue.get()

    def connect(self) -> None:
        """The writer's connection, open (and what it knew forgotten if it is new)."""
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


class Outcomes:
    """A group's results as the writer settles them: a Future at once; a future with
    get_loop() (asyncio's) gathered per loop and handed over by `deliver`, one
    call_soon_threadsafe per loop."""

    def __init__(self):
        self.by_loop: dict = {}

    def settle(self, future, result=None, error: BaseException | None = None) -> None:
        if hasattr(future, "get_loop"):
            self.by_loop.setdefault(future.get_loop(), []).append((future, result, error))
        else:
            settle(future, result, error)

    def deliver(self) -> None:
        by_loop, self.by_loop = self.by_loop, {}
        for loop, settled in by_loop.items():
            # A closed loop raises RuntimeError: nobody waits for these any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle_all, settled)


def settle_all(settled: list) -> None:
    """In the loop's thread: each asyncio future its outcome, unless it was cancelled."""
    for future, result, error in settled:
        settle(future, result, error)


def commit_group(
    group: list[Work], known: Known | None = None, outcomes=None, jointly: bool = True
) -> None:
    """One transaction for the group: one statement for all when every write can run
    jointly, else each write in its savepoint. On PostgreSQL writers on other hosts run at
    the same time (the "ingest" scope takes no lock: every write is an upsert), so two
    groups can deadlock on the same rows; the server then fails one, and that group runs
    again whole (its writes are idempotent), up to RETRIES times, before any caller hears
    of it."""
    known = known or Known()
    own = outcomes is None
    outcomes = outcomes or Outcomes()
    if not (jointly and ran_jointly(group, outcomes)):
        commit_one_by_one(group, known, outcomes)
    if own:
        outcomes.deliver()


def ran_jointly(group: list[Work], outcomes: Outcomes) -> bool:
    """Run the group at once if every write offers the same function (`jointly` gives
    (function, rows, result)): True once each caller has its outcome, False (nothing
    stored) when the writes must run one by one."""
    plans = []
    for work, _ in group:
        offer = getattr(work, "jointly", None)
        plan = offer() if offer is not None else None
        if plan is None or (plans and plan[0] is not plans[0][0]):
            return False
        plans.append(plan)
    error = run_jointly(plans[0][0], [row for _, rows, _ in plans for row in rows])
    if error is ALONE:
        return False
    for (_, future), (_, _, result) in zip(group, plans, strict=True):
        outcomes.settle(future, None if error else result, error)
    return True


ALONE = Exception("the group's writes must run one by one")


def run_jointly(function: Callable[[list], Any], rows: list) -> BaseException | None:
    """function(rows) in one write transaction: None once committed; the error if it is
    one that every write of the group would meet alike (a busy lock, a storage fault),
    which is theirs; ALONE (nothing stored) for any other, as a write of the group is
    wrong and each alone finds which."""
    try:
        with write_transaction("ingest"):
            function(rows)
    except Exception as exc:
        return exc if is_busy(exc) or storage_fault(exc) else ALONE
    return None


def commit_one_by_one(group: list[Work], known: Known, outcomes: Outcomes) -> None:
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
                outcomes.settle(future, error=exc)
            return
        known.ended(True)
        for (_, future), (result, error) in zip(group, results, strict=True):
            outcomes.settle(future, result, error)
        return


def settle(future, result=None, error: BaseException | None = None) -> None:
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
