"""The hot read path's memory: every served body with its headers, in one immutable
snapshot that a refresh replaces by swapping one reference.

A refresh reads what changed since the snapshot's version (core.served: one consistent
read transaction, so one run's publish is all in or all out) and builds the next snapshot
beside the current one, without holding any lock readers or writers wait on; only the
compare-and-swap of the reference is locked. A request reads `cache.snapshot` once, so it
never sees two runs mixed across experiments. Only the bodies' rows are on the path from a
publish to GET /allocation: the swap happens inside the read transaction once they are
read; the arms, the bulk payload and the rest follow from the same snapshot. The
refresher thread polls every refresh_ms, and the first load runs there too, so the port is
bound and /healthz answers while it runs.
"""

import gc
import gzip
import json
import logging
import threading
import time
from contextlib import contextmanager
from functools import partial

from api.fastpath import QUERY_PREFIX, Served, etag_of, header, query_key, served
from core import testhooks
from core.assign import Assigner
from core.db import ChangeListener, database
from core.served import Changed, bodies_since

log = logging.getLogger("bandit.cache")
GZIP_LEVEL = 6
VARY = (b"vary", b"accept-encoding")


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    if not accept_encoding:
        return False
    for coding in accept_encoding.lower().split(b","):
        name, _, params = coding.strip().partition(b";")
        if name.strip() in (b"gzip", b"*"):
            return params.replace(b" ", b"") not in (b"q=0", b"q=0.0", b"q=0.00", b"q=0.000")
    return False


class Bulk:
    """GET /allocations: every served split in one body, plain and (once compressed) gzip."""

    def __init__(self, items: dict[str, bytes]):
        # Sorted by id, so that every process builds the same bytes and the same ETag.
        # Each encoding's validator matches the other's in If-None-Match: a client that got
        # the plain body before the gzip one was built (compress runs after the swap) has
        # the same content, and must get a 304 for it, not the payload again.
        body = b'{"experiments":[' + b",".join(items[n] for n in sorted(items)) + b"]}"
        plain_tag = etag_of(body)
        self.gzip_tag = plain_tag[:-1] + b'-gzip"'  # etag_of(body, b"-gzip"), not hashed again
        self.plain = served(body, plain_tag, (VARY,), same=self.gzip_tag)
        self.gzipped: Served | None = None

    def compress(self) -> None:
        packed = gzip.compress(self.plain.body, compresslevel=GZIP_LEVEL, mtime=0)
        encoding = (b"content-encoding", b"gzip")
        self.gzipped = served(packed, self.gzip_tag, (VARY, encoding), same=self.plain.etag)

    def pick(self, scope) -> Served:
        if self.gzipped is not None and accepts_gzip(header(scope, b"accept-encoding")):
            return self.gzipped
        return self.plain


class Snapshot:
    """One consistent view of what is served. A refresh swaps it in as soon as the rows
    are read: a body is encoded on its first request, the rest by finish() right after
    the swap, which then builds the GET /allocations items, the bulk payload and its gzip
    from the same snapshot. Reads of those wait for `complete`: they get this snapshot's
    data or wait, never another run's."""

    def __init__(self, version: int, bodies: dict, by_query: dict, items: dict, changed=None):
        self.version, self.bodies, self.by_query = version, bodies, by_query
        self.items = items  # the base's until finish()
        self.changed = changed  # core.served.Changed, until finish() has encoded it all
        self.count = len(bodies) + (len(changed.names()) if changed else 0)
        self.bulk = Bulk({})
        self.assigners: dict[str, Assigner] = {}
        self.complete = threading.Event()

    def body(self, name: str) -> bytes | None:
        changed = self.changed  # read first: finish() fills bodies, then drops it
        found = self.bodies.get(name)
        if found is None and changed is not None:
            found = changed.body(name)
            if found is not None:
                self.bodies[name] = found
        return found

    def allocation(self, query: bytes) -> Served | None:
        """The GET /allocation answer for an exact query string, encoded on first use."""
        found = self.by_query.get(query)
        if found is None and query.startswith(QUERY_PREFIX):
            body = self.body(query[len(QUERY_PREFIX) :].decode(errors="replace"))
            if body is not None:
                found = self.by_query[query] = served(body)
        return found

    def finish(self) -> None:
        """Encode the rest and build what GET /allocations and GET /assign read (no
        database access here: what it needs was read with the rows)."""
        changed = self.changed
        if changed is not None:
            bodies = {name: self.body(name) for name in changed.names()}
            self.items = {**self.items, **changed.items(bodies)}
        self.bulk = Bulk(self.items)
        self.changed = None
        self.complete.set()
        self.bulk.compress()

    def abandon(self, base: "Snapshot | None") -> None:
        """The read after the swap failed: GET /allocation serves this snapshot, GET
        /allocations and GET /assign the one before, whole, until the next refresh reads
        everything since that one's version again."""
        self.version = base.version if base is not None else -1
        if base is not None:
            self.items, self.bulk, self.assigners = base.items, base.bulk, base.assigners
        self.complete.set()

    def assigner(self, experiment_id: str) -> Assigner | None:
        """Built on the first GET /assign of each experiment (call once complete)."""
        found = self.assigners.get(experiment_id)
        if found is None and experiment_id in self.items:
            assignment = json.loads(self.items[experiment_id])["assignment"]
            found = self.assigners[experiment_id] = Assigner(experiment_id, assignment)
        return found


def next_snapshot(base: Snapshot | None, changed: Changed) -> Snapshot:
    """The snapshot after `base` (which must be complete) with what changed."""
    if base is None:
        return Snapshot(changed.version, {}, {}, {}, changed)
    names = changed.names()
    if len(names) < len(base.bodies) // 2:
        bodies, by_query, items = dict(base.bodies), dict(base.by_query), dict(base.items)
        for name in names:
            bodies.pop(name, None)
            by_query.pop(query_key(name), None)
            items.pop(name, None)
    else:  # most changed: keep the few that did not
        bodies, items = unchanged(base.bodies, changed), unchanged(base.items, changed)
        by_query = {}
    return Snapshot(changed.version, bodies, by_query, items, changed)


def unchanged(served: dict, changed: Changed) -> dict:
    """The entries of `served` whose experiment did not change: none after a publish for
    every experiment, found with set operations on the keys rather than one by one."""
    if served.keys() <= changed.splits.keys():
        return {}
    names = served.keys() - changed.splits.keys() - changed.placeholders.keys()
    return {name: served[name] for name in names}


class AllocationCache:
    """`snapshot` is None until the first load has finished (`loaded` is set then)."""

    def __init__(self):
        self.snapshot: Snapshot | None = None
        self.loaded = threading.Event()
        self._swap = threading.Lock()
        self.refreshed_at: float | None = None  # time.monotonic() of the last refresh

    def __len__(self) -> int:
        return self.snapshot.count if self.snapshot else 0

    def served_for(self, experiment_id: str) -> Served | None:
        return self.snapshot.allocation(query_key(experiment_id)) if self.snapshot else None

    def refresh(self) -> int:
        """Load what changed since the current snapshot and swap it in; how many changed."""
        if database.is_closed():  # the refresher thread holds its connection open
            with database.connection_context():
                return self._refresh()
        return self._refresh()

    def _refresh(self) -> int:
        while True:
            base = self.snapshot
            if base is not None:
                base.complete.wait()  # a concurrent refresh may still be finishing it
            swapped: list[Snapshot] = []
            with collector_paused():
                swap = partial(self._swap_in, base, swapped)
                try:
                    changed = bodies_since(base.version if base else -1, swap)
                except Exception:
                    if swapped:  # the bodies are served; what is read after them failed
                        swapped[0].abandon(base)
                    raise
            if base is not None and changed.version <= base.version:
                self.refreshed_at = time.monotonic()
                return 0
            if swapped:  # else another refresh swapped first: redo
                break
        swapped[0].finish()
        return len(changed.names())

    def _swap_in(self, base: Snapshot | None, swapped: list, changed: Changed) -> bool:
        """Swap in the snapshot after `base` (called as soon as the bodies' rows are
        read, before the rest); False when there is nothing new or another refresh
        swapped first."""
        if base is not None and changed.version <= base.version:
            return False
        new = next_snapshot(base, changed)
        with self._swap:
            if self.snapshot is not base:
                return False
            self.snapshot = new
        swapped.append(new)
        self.refreshed_at = time.monotonic()
        self.loaded.set()
        return True


@contextmanager
def collector_paused():
    """No cyclic garbage collection while a snapshot's objects are made: at 200,000
    experiments its full passes over the growing heap cost a fifth of the load."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fallback_s(interval_s: float) -> float:
    """How long a PostgreSQL web process waits for a notification before it polls anyway:
    ten poll intervals, at most 5 s (a notification lost with its connection costs that)."""
    return max(interval_s, min(10 * interval_s, 5.0))


class Refresher(threading.Thread):
    """Loads the cache at once, then refreshes until stopped: every interval on SQLite, on
    each change notification on PostgreSQL (core.db.ChangeListener); logs and retries on
    errors."""

    def __init__(self, cache: AllocationCache, interval_s: float):
        super().__init__(name="allocation-refresher", daemon=True)
        self.cache = cache
        self.interval_s = interval_s
        self.stopped = threading.Event()

    def run(self) -> None:
        # One connection held open for the life of the process: when the last connection
        # to a WAL database closes, SQLite checkpoints and deletes the WAL, and without this
        # one that would happen after every request (each opens and closes its own).
        database.connect(reuse_if_open=True)
        try:
            testhooks.pause("load")
            self.refresh_logged()
            log.info("serving %d experiments", len(self.cache))
            listener = ChangeListener(self.interval_s, fallback_s(self.interval_s))
            try:
                while not self.stopped.is_set():
                    listener.wait(self.stopped)
                    if not self.stopped.is_set():
                        self.refresh_logged()
            finally:
                listener.close()
        finally:
            database.close()

    def refresh_logged(self) -> None:
        try:
            self.cache.refresh()
        except Exception:
            log.exception("allocation refresh failed; retrying")

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
