"""bandit_client: assign units to arms from bandit-api's published splits, in a router.

Standard library only: copy this one file into a router. The server's GET /assign uses
these very functions (core/assign.py imports them), so a unit gets the same arm from
both. The README's "Router guide" specifies the hash with test vectors.
"""

import gzip
import hashlib
import json
import os
import threading
import urllib.error
import urllib.request
from bisect import bisect_right

BUCKETS = 10_000
SEED = "sticky"  # the seed of a sticky experiment: the same every day


def bucket(experiment_id: str, unit_id: str, seed: str) -> int:
    """SHA-256 of "<experiment_id>/<seed>/<unit_id>" (UTF-8), its first 8 bytes as a
    big-endian unsigned integer, modulo 10,000. Neither an experiment id nor a seed holds
    a "/", so the key is unambiguous whatever the unit id holds."""
    key = f"{experiment_id}/{seed}/{unit_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % BUCKETS


class Assigner:
    """One experiment's assignment: its seed and, per arm in the published order, the
    bucket ranges [low, high) it owns (together they cover 0 to 9,999 once)."""

    def __init__(self, experiment_id: str, assignment: dict):
        self.experiment_id = experiment_id
        self.seed = assignment["seed"]
        pieces = sorted(
            (low, high, arm["variant_id"])
            for arm in assignment["arms"]
            for low, high in arm["buckets"]
            if high > low
        )
        self.starts = [low for low, _, _ in pieces]
        self.owners = [variant for _, _, variant in pieces]

    def bucket(self, unit_id: str) -> int:
        return bucket(self.experiment_id, unit_id, self.seed)

    def variant_at(self, number: int) -> str:
        return self.owners[bisect_right(self.starts, number) - 1]

    def variant(self, unit_id: str) -> str:
        return self.variant_at(self.bucket(unit_id))


class Client:
    """Keeps every split of a bandit-api server and assigns units locally.

    refresh() polls GET /allocations with If-None-Match (a 304 when nothing changed); a
    200 replaces the payload only once it parsed whole. Anything else (the server down or
    restarting, a 5xx, a truncated body) keeps the last good payload and records the
    error in `last_error`, so a router keeps assigning through a server restart. With
    `cache_path`, each good payload is also written there (atomically) and read at start,
    so a router that restarts while the server is down still has it. start() polls in a
    daemon thread every `interval_s`.
    """

    def __init__(self, base_url: str, api_key=None, interval_s=1.0, timeout_s=5.0, cache_path=None):
        self.url = base_url.rstrip("/") + "/allocations"
        self.headers = {"Accept-Encoding": "gzip"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.interval_s, self.timeout_s, self.cache_path = interval_s, timeout_s, cache_path
        self.etag, self.assigners, self.last_error = None, {}, None
        self._stopped = threading.Event()
        if cache_path and os.path.exists(cache_path):
            with open(cache_path, "rb") as f:
                self._take(json.load(f))

    def refresh(self) -> bool:
        """One poll; True when a new payload was taken."""
        request = urllib.request.Request(self.url, headers=self.headers)
        if self.etag:
            request.add_header("If-None-Match", self.etag)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                raw = response.read()
                if response.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                payload = json.loads(raw)
                etag = response.headers.get("ETag")
        except urllib.error.HTTPError as e:
            self.last_error = None if e.code == 304 else f"HTTP {e.code}"
            return False
        except (OSError, ValueError) as e:  # down, refused, timed out, truncated, not JSON
            self.last_error = f"{type(e).__name__}: {e}"
            return False
        self._take(payload, etag)
        self._save(payload)
        return True

    def _take(self, payload: dict, etag=None) -> None:
        assigners = {
            e["experiment_id"]: Assigner(e["experiment_id"], e["assignment"])
            for e in payload["experiments"]
        }
        self.assigners, self.etag, self.last_error = assigners, etag, None

    def _save(self, payload: dict) -> None:
        if not self.cache_path:
            return
        partial = f"{self.cache_path}.partial"
        with open(partial, "w") as f:
            json.dump(payload, f)
        os.replace(partial, self.cache_path)

    def variant(self, experiment_id: str, unit_id: str, default=None):
        """The unit's arm, as GET /assign answers it. For an experiment the payload does not
        hold (unknown, or no payload yet): `default` itself when it is a string (say
        "control"), an equal split of it when it is a list of arms (hashed the same way,
        seed "sticky"), else None."""
        assigner = self.assigners.get(experiment_id)
        if assigner is not None:
            return assigner.variant(unit_id)
        if isinstance(default, list | tuple):
            return default[bucket(experiment_id, unit_id, SEED) * len(default) // BUCKETS]
        return default

    def start(self) -> "Client":
        threading.Thread(target=self._poll, name="bandit-client", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _poll(self) -> None:
        while not self._stopped.is_set():
            self.refresh()
            self._stopped.wait(self.interval_s)
