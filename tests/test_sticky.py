"""Stickiness: in sticky mode the units that change arm between two splits are the total
variation distance between them; daily mode re-randomises every unit each day."""

import dataclasses
import json
import random
from datetime import date, timedelta

import pytest

from bandit_client import BUCKETS, Assigner, bucket
from core.assign import bucket_counts, encode, ranges_of, sticky_step
from core.policy import round_to_hundred
from core.served import bodies_since
from tests.helpers import NOW, load, run_at

UNITS = [f"user-{n}" for n in range(100_000)]
SEED_BUCKETS = [bucket("exp", unit, "sticky") for unit in UNITS]


def random_split(rng: random.Random, arms: int) -> list[float]:
    weights = [rng.random() ** 3 for _ in range(arms)]
    return round_to_hundred([w / sum(weights) for w in weights])


def owners(runs, arms: int) -> list[int]:
    table = [0] * BUCKETS
    for arm, ranges in enumerate(ranges_of(runs, arms)):
        for low, high in ranges:
            table[low:high] = [arm] * (high - low)
    return table


def total_variation(p: list[float], q: list[float]) -> float:
    return sum(abs(a - b) for a, b in zip(p, q, strict=True)) / 200


def test_units_that_move_between_random_splits_are_the_total_variation_distance():
    rng = random.Random(14)
    for _ in range(60):
        arms = rng.randint(2, 10)
        runs, split = None, random_split(rng, arms)
        runs = sticky_step(runs, bucket_counts(split))
        for _day in range(3):  # from a day whose ranges are already fragmented
            before, runs_before = split, runs
            split = random_split(rng, arms)
            runs = sticky_step(runs_before, bucket_counts(split))
            old, new = owners(runs_before, arms), owners(runs, arms)
            moved_buckets = sum(a != b for a, b in zip(old, new, strict=True))
            assert moved_buckets == round(total_variation(before, split) * BUCKETS)
            moved = sum(old[b] != new[b] for b in SEED_BUCKETS) / len(UNITS)
            assert abs(moved - total_variation(before, split)) <= 0.01


def test_each_arm_owns_its_share_and_a_new_arm_joins_from_the_shrinking_ones():
    runs = sticky_step(None, [2000, 3000, 5000])
    runs = sticky_step(runs, [1000, 3000, 4000, 2000])
    owned = [0] * 4
    for arm, count in runs:
        owned[arm] += count
    assert owned == [1000, 3000, 4000, 2000]
    middle = owners(sticky_step(None, [2000, 3000, 5000]), 3)
    assert all(owners(runs, 4)[b] == 1 for b in range(BUCKETS) if middle[b] == 1)


def test_an_archived_arm_moves_only_its_own_units():
    before = [2.0, 14.9, 83.1]
    runs = sticky_step(None, bucket_counts(before))
    after = sticky_step(runs, bucket_counts([0.0, 15.1, 84.9]))
    old, new = owners(runs, 3), owners(after, 3)
    assert sum(a != b for a, b in zip(old, new, strict=True)) == 200  # a's 2.0%, no more
    assert all(new[b] == old[b] for b in range(BUCKETS) if old[b] != 0)


def test_a_year_of_splits_stays_a_few_hundred_bytes_per_experiment_day():
    rng = random.Random(5)
    runs = None
    for _day in range(365):
        runs = sticky_step(runs, bucket_counts(random_split(rng, 3)))
    assert len(encode("sticky", runs)) < 200


def assignments(day_items: dict) -> dict:
    return {name: json.loads(item)["assignment"] for name, item in day_items.items()}


def published_day(settings, day: int) -> dict:
    """Post a day of counts that favours another arm each day, run the job, return items."""
    when = date(2025, 12, 22) + timedelta(days=day)
    clicks = [10, 40, 90] if day % 2 == 0 else [90, 40, 10]
    load(*[("exp", when, arm, 1000, c) for arm, c in zip("abc", clicks, strict=True)])
    run_at(NOW + timedelta(days=day), settings)
    changed = bodies_since(-1)
    return assignments(changed.items(changed.bodies()))


def test_the_job_publishes_sticky_ownership_from_the_previous_day(db, settings):
    first, second = published_day(settings, 0)["exp"], published_day(settings, 1)["exp"]
    assert first["seed"] == second["seed"] == "sticky"
    old, new = Assigner("exp", first), Assigner("exp", second)
    moved = sum(old.variant_at(b) != new.variant_at(b) for b in range(BUCKETS)) / BUCKETS
    shares = [[a for a in day["arms"]] for day in (first, second)]
    p, q = ([sum(hi - lo for lo, hi in arm["buckets"]) / 100 for arm in s] for s in shares)
    assert moved == pytest.approx(total_variation(p, q), abs=1e-9)
    assert moved > 0


def test_daily_mode_reseeds_every_unit_each_day(db, settings):
    policy = dataclasses.replace(settings.policy, assignment="daily")
    settings = dataclasses.replace(settings, policy=policy)
    first, second = published_day(settings, 0)["exp"], published_day(settings, 1)["exp"]
    assert (first["seed"], second["seed"]) == ("2025-12-23", "2025-12-24")
    same = sum(
        bucket("exp", u, first["seed"]) == bucket("exp", u, second["seed"]) for u in UNITS[:5000]
    )
    assert same < 50  # about 1 in 10,000 by chance
