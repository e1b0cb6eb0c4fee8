"""bandit_client: assign units to arms from bandit-api's published splits, in a router.

Standard library only: copy this one file into a router. The server's GET /assign uses
these very functions (core/assign.py imports them), so a unit gets the same arm from
both. The README's "Router guide" specifies the hash with test vectors.
"""

import hashlib
from bisect import bisect_right

BUCKETS = 10_000


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
