"""The hot read path: GET /allocation bodies, serialized once per publish, kept in memory.

A background thread asks the database only for experiments whose version moved past the
last one seen (an indexed query that usually returns nothing), so a publish by the clock
or another worker is served within refresh_ms without a query per request.
"""

import json
import logging
import threading
from collections import defaultdict

from peewee import JOIN, fn

from api.fastpath import query_key, response_headers
from api.reasons import NOT_COMPUTED_REASON, latest_reasons, reason_fields
from core.db import database, read_transaction
from core.models import Allocation, Experiment, Run, Variant
from core.policy_models import ArchivedVariant
from scheduler.thompson import equal_split

log = logging.getLogger("bandit.cache")
CHUNK = 500


def dumps(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def computed_body(name: str, rows: list, reason=None) -> bytes:
    first = rows[0]
    return dumps(
        {
            "experiment_id": name,
            "date": first.effective_date.isoformat(),
            "status": "computed",
            "allocations": [
                {
                    "variant_id": r.variant.name,
                    "percentage": r.percentage,
                    "probability": r.probability,
                }
                for r in rows
            ],
            "computed_at": first.run.finished_at.isoformat() + "Z"
            if first.run.finished_at
            else first.created_at.isoformat() + "Z",
            "run_id": first.run_id,
            **reason_fields(reason),
        }
    )


def placeholder_body(name: str, variants: list[str]) -> bytes:
    return dumps(
        {
            "experiment_id": name,
            "date": None,
            "status": "not_computed",
            "allocations": [
                {"variant_id": v, "percentage": pct, "probability": None}
                for v, pct in zip(variants, equal_split(len(variants)), strict=True)
            ],
            "computed_at": None,
            "run_id": None,
            **NOT_COMPUTED_REASON,
        }
    )


def latest_allocations(experiment_ids: list[int]) -> dict[int, list]:
    latest = (
        Allocation.select(Allocation.experiment, fn.MAX(Allocation.effective_date).alias("day"))
        .where(Allocation.experiment.in_(experiment_ids))
        .group_by(Allocation.experiment)
        .alias("latest")
    )
    rows = (
        Allocation.select(Allocation, Variant, Run)
        .join(
            latest,
            on=(
                (Allocation.experiment == latest.c.experiment_id)
                & (Allocation.effective_date == latest.c.day)
            ),
        )
        .switch(Allocation)
        .join(Variant)
        .switch(Allocation)
        .join(Run, JOIN.LEFT_OUTER)
        .order_by(Allocation.experiment, Allocation.variant)
    )
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.experiment_id].append(row)
    return grouped


def variant_names(experiment_ids: list[int]) -> dict[int, list[str]]:
    rows = (
        Variant.select(Variant.experiment, Variant.name)
        .where(Variant.experiment.in_(experiment_ids))
        .where(Variant.id.not_in(ArchivedVariant.select(ArchivedVariant.variant)))
        .order_by(Variant.experiment, Variant.id)
        .tuples()
    )
    grouped = defaultdict(list)
    for exp_id, name in rows:
        grouped[exp_id].append(name)
    return grouped


class AllocationCache:
    """Bodies with their headers, keyed by the exact query string of a plain request
    (what the fast path in api/fastpath.py looks up); get() finds them by experiment id."""

    def __init__(self):
        self.encoded: dict[bytes, tuple[list, bytes]] = {}
        self.version = -1
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
        if database.is_closed():
            with database.connection_context():
                return self._refresh()
        return self._refresh()

    def _refresh(self) -> int:
        with self._lock, read_transaction():
            changed = list(
                Experiment.select(Experiment.id, Experiment.name, Experiment.version)
                .where(Experiment.version > self.version)
                .order_by(Experiment.version)
                .tuples()
            )
            for start in range(0, len(changed), CHUNK):
                self._load(changed[start : start + CHUNK])
            if changed:
                self.version = changed[-1][2]
        return len(changed)

    def _load(self, changed: list[tuple]) -> None:
        ids = [exp_id for exp_id, _, _ in changed]
        allocations = latest_allocations(ids)
        names = variant_names(ids)
        reasons = latest_reasons(ids)
        for exp_id, name, _ in changed:
            if allocations.get(exp_id):
                self.put(name, computed_body(name, allocations[exp_id], reasons.get(exp_id)))
            elif names.get(exp_id):
                self.put(name, placeholder_body(name, names[exp_id]))


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
