"""Assignment: the bucket ranges each arm of a published split owns, in a stable arm order.

A unit's bucket is bandit_client.bucket(experiment, unit, seed) (the router's own module,
so server and client share one function); the arm is the one whose ranges hold it. Arms
are listed in the order they joined the experiment, every arm it ever had: an archived arm
keeps its place with no buckets, a new arm is added at the end.
"""

from json.encoder import encode_basestring_ascii as quoted

from bandit_client import BUCKETS, SEED, Assigner, bucket

__all__ = ["BUCKETS", "SEED", "Assigner", "assignment_json", "bucket", "sticky_step"]


def bucket_counts(percentages: list[float]) -> list[int]:
    """One-decimal percentages summing to 100.0 as bucket counts summing to 10,000; a
    rounding remainder (older rows with more decimals) goes to the largest arm."""
    counts = [round(p * BUCKETS / 100) for p in percentages]
    if counts:
        counts[counts.index(max(counts))] += BUCKETS - sum(counts)
    return counts


Runs = list[tuple[int, int]]  # (arm position, bucket count) in bucket order, covering all


def cumulative(counts: list[int]) -> Runs:
    return [(arm, count) for arm, count in enumerate(counts) if count]


def release(previous: Runs, excess: list[int]) -> list[tuple[int | None, int]]:
    """Each shrinking arm gives up buckets from its smallest runs first (whole runs where it
    can, so fragments vanish rather than multiply; a partial run gives up its high end).
    None marks a freed piece whose new owner is still to be chosen."""
    freed = [0] * len(previous)
    for i in sorted(range(len(previous)), key=lambda i: (previous[i][1], i)):
        arm, count = previous[i]
        freed[i] = min(excess[arm], count)
        excess[arm] -= freed[i]
    pieces: list[tuple[int | None, int]] = []
    for (arm, count), gone in zip(previous, freed, strict=True):
        pieces += [(arm, count - gone)] * (count > gone) + [(None, gone)] * (gone > 0)
    return pieces


def fill(pieces: list[tuple[int | None, int]], need: list[int]) -> Runs:
    """Freed buckets, lowest first, to the growing arms in arm order."""
    runs, arm = [], 0
    for owner, count in pieces:
        while owner is None and count:
            while need[arm] == 0:
                arm += 1
            taken = min(count, need[arm])
            runs.append((arm, taken))
            need[arm], count = need[arm] - taken, count - taken
        if owner is not None:
            runs.append((owner, count))
    return merged(runs)


def merged(runs: Runs) -> Runs:
    out: Runs = []
    for arm, count in runs:
        if out and out[-1][0] == arm:
            out[-1] = (arm, out[-1][1] + count)
        else:
            out.append((arm, count))
    return out


def sticky_step(previous: Runs | None, counts: list[int]) -> Runs:
    """The next day's ownership: a bucket changes owner only if its arm's share shrank, so
    the buckets that move are exactly sum(max(0, old - new)) = 10,000 x the total
    variation distance between the two splits. Without a previous day: cumulative."""
    if not previous:
        return cumulative(counts)
    old = [0] * len(counts)
    for arm, count in previous:
        old[arm] += count
    excess = [max(0, o - n) for o, n in zip(old, counts, strict=True)]
    need = [max(0, n - o) for o, n in zip(old, counts, strict=True)]
    return fill(release(previous, excess), need)


def encode(mode: str, runs: Runs) -> str:
    """What allocation_reason.buckets stores: "sticky 0:300,2:9700" (arm position:count)."""
    return f"{mode} " + ",".join(f"{arm}:{count}" for arm, count in runs)


def decode(text: str | None) -> tuple[str, Runs | None]:
    if not text:
        return SEED, None
    mode, _, runs = text.partition(" ")
    return mode, [tuple(map(int, run.split(":"))) for run in runs.split(",") if run]


def ranges_of(runs: Runs, arms: int) -> list[list[tuple[int, int]]]:
    ranges: list[list[tuple[int, int]]] = [[] for _ in range(arms)]
    low = 0
    for arm, count in runs:
        ranges[arm].append((low, low + count))
        low += count
    return ranges


def assignment_json(
    arms: list[str], shares: dict[str, float], stored: str | None = None, day: str = ""
) -> str:
    """The "assignment" member of a split in GET /allocations: seed and ranges per arm,
    from the stored ownership, else (no run stored one) cumulative in arm order. Written
    by hand: a publish of 200,000 experiments writes this 200,000 times."""
    mode, runs = decode(stored)
    if runs is None or any(arm >= len(arms) for arm, _ in runs):
        runs = cumulative(bucket_counts([shares.get(arm, 0.0) for arm in arms]))
    owned: list[list[str]] = [[] for _ in arms]
    low = 0
    for arm, count in runs:
        owned[arm].append(f"[{low},{low + count}]")
        low += count
    items = ",".join(
        f'{{"variant_id":{quoted(arm)},"buckets":[{",".join(own)}]}}'
        for arm, own in zip(arms, owned, strict=True)
    )
    seed = day if mode == "daily" else SEED
    return f'{{"seed":{quoted(seed)},"buckets":{BUCKETS},"arms":[{items}]}}'
