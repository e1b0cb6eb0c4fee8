"""The hot read path: GET /allocation bodies, encoded once per publish (core.splits), kept
in memory.

A background thread asks the database only for experiments whose version moved past the
last one seen (an indexed query that usually returns nothing), so a publish by the clock
or another worker is served within refresh_ms without a query per request.
"""

import logging
import threading
import time

from api.fastpath import query_key, response_headers
from core.db import database
from core.splits import bodies_since

log = logging.getLogger("bandit.cache")


class AllocationCache:
    """Bodies with their headers, keyed by the exact query string of a plain request
    (what the fast path in api/fastpath.py looks up); get() finds them by experiment id."""

    def __init__(self):
        self.encoded: dict[bytes, tuple[list, bytes]] = {}
        self.version = -1
        self.refreshed_at: float | None = None  # time.monotonic() of the last refresh
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.encoded)

    def get(self, experiment_id: str) -> bytes | None:
        found = self.encoded.get(query_key(experiment_id))
        return found[1] if found else None

    def put(self, experiment_id: str, body: bytes) -> None:
        # Readers in other threads see the old body or the new one: each store is atomic.
        self.encoded[query_key(experiment_id)] = (response_headers(body), body)

    def refresh(self) -> int:
        """Load what changed since the last refresh; return how many experiments."""
        if database.is_closed():  # the refresher thread holds its connection open
            with database.connection_context():
                return self._refresh()
        return self._refresh()

    def _refresh(self) -> int:
        with self._lock:
            bodies, self.version = bodies_since(self.version)
            for name, body in bodies.items():
                self.put(name, body)
            self.refreshed_at = time.monotonic()
        return len(bodies)


class Refresher(threading.Thread):
    """Calls cache.refresh() every interval until stopped; logs and retries on errors."""

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
            while not self.stopped.wait(self.interval_s):
                try:
                    self.cache.refresh()
                except Exception:
                    log.exception("allocation refresh failed; retrying")
        finally:
            database.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=5)
