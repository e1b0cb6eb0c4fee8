"""Assignment: the bucket ranges each arm of a published split owns, in a stable arm order.

A unit's bucket is bandit_client.bucket(experiment, unit, seed) (the router's own module,
so server and client share one function); the arm is the one whose ranges hold it. Arms
are listed in the order they joined the experiment, every arm it ever had: an archived arm
keeps its place with no buckets, a new arm is added at the end.
"""

from json.encoder import encode_basestring_ascii as quoted

from bandit_client import BUCKETS, Assigner, bucket

__all__ = ["BUCKETS", "SEED", "Assigner", "assignment_json", "bucket", "cumulative_ranges"]

SEED = "sticky"  # the same every day: a unit keeps its bucket


def bucket_counts(percentages: list[float]) -> list[int]:
    """One-decimal percentages summing to 100.0 as bucket counts summing to 10,000; a
    rounding remainder (older rows with more decimals) goes to the largest arm."""
    counts = [round(p * BUCKETS / 100) for p in percentages]
    if counts:
        counts[counts.index(max(counts))] += BUCKETS - sum(counts)
    return counts


def cumulative_ranges(counts: list[int]) -> list[list[tuple[int, int]]]:
    ranges, low = [], 0
    for count in counts:
        ranges.append([(low, low + count)] if count else [])
        low += count
    return ranges


def assignment_json(arms: list[str], shares: dict[str, float], seed: str = SEED) -> str:
    """The "assignment" member of a split in GET /allocations: seed and ranges per arm."""
    ranges = cumulative_ranges(bucket_counts([shares.get(arm, 0.0) for arm in arms]))
    items = ",".join(
        f'{{"variant_id":{quoted(arm)},"buckets":[{",".join(f"[{lo},{hi}]" for lo, hi in own)}]}}'
        for arm, own in zip(arms, ranges, strict=True)
    )
    return f'{{"seed":{quoted(seed)},"buckets":{BUCKETS},"arms":[{items}]}}'
