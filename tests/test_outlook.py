"""The outlook against repeated simulated runs of the service's own policy (core.policy.decide
with its 10,000 seeded draws, day after day), and its rules, seed, cache and endpoint."""

import dataclasses
from datetime import date, timedelta

import numpy as np

from core import outlook as engine
from core.outlook import Start, outlook, simulate
from core.policy import ArmCounts, day_number, decide
from core.sampling import Prior, experiment_seed
from core.settings import PolicySettings

DAY = date(2025, 12, 1)
DAILY = 1000
RATES = (0.04, 0.05)


def start(policy=None, impressions=(500, 500), clicks=(20, 25), name="e1") -> Start:
    return Start(
        name,
        DAY,
        DAY,
        ("a", "b"),
        impressions,
        clicks,
        tuple((float(n), float(c)) for n, c in zip(impressions, clicks, strict=True)),
        (),
        (0.5, 0.5),
        DAILY,
        policy or PolicySettings(),
        False,
        (1.0, 1.0),
    )


def policy_run(seed: int, horizon: int = 90) -> int | None:
    """One experiment lived under the service's policy from start(): the day whose run
    declares a winner (None past the horizon)."""
    rng = np.random.default_rng(seed)
    shown_so_far, clicks_so_far = np.array([500, 500]), np.array([20, 25])
    shares = np.array([0.5, 0.5])
    for day in range(1, horizon + 1):
        shown = rng.multinomial(DAILY, shares)
        shown_so_far = shown_so_far + shown
        clicks_so_far = clicks_so_far + rng.binomial(shown, RATES)
        effective = DAY + timedelta(days=day + 1)
        split = decide(
            [
                ArmCounts(n, float(i), float(c), int(i))
                for n, i, c in zip("ab", shown_so_far, clicks_so_far, strict=True)
            ],
            day_number(effective, DAY),
            False,
            PolicySettings(),
            Prior(),
            10_000,
            experiment_seed(f"reference-{seed}", effective),
        )
        if split.winner.declared:
            return day
        shares = split.shares
    return None


def ks_statistic(first: list[int], second: list[int]) -> float:
    """Two-sample Kolmogorov-Smirnov: the largest gap between the empirical CDFs."""
    grid = np.arange(0, 92)
    cdf = [
        np.searchsorted(np.sort(values), grid, side="right") / len(values)
        for values in (first, second)
    ]
    return float(np.max(np.abs(cdf[0] - cdf[1])))


def days(values) -> list[int]:
    return [91 if v is None else v for v in values]


def test_days_to_a_winner_match_repeated_runs_of_the_services_policy():
    reference = days(policy_run(seed) for seed in range(150))
    rates = np.tile(RATES, (400, 1))
    simulated = days(simulate(start(), rates, np.random.default_rng(5)).winner_days)
    assert abs(np.median(simulated) - np.median(reference)) <= 1
    # The critical value of the two-sample test at the 1% level for these sizes.
    critical = 1.63 * np.sqrt((150 + 400) / (150 * 400))
    assert ks_statistic(reference, simulated) < critical


def test_identical_arms_are_unlikely_to_get_a_winner():
    even = start(impressions=(20_000, 20_000), clicks=(800, 800))
    found = simulate(even, np.tile([0.04, 0.04], (60, 1)), np.random.default_rng(1))
    assert found.days_to_winner is None
    assert found.declared_share < 0.5


def test_a_better_arm_gains_clicks_and_an_equal_split_gains_none():
    rates = np.tile(RATES, (100, 1))
    lean = simulate(start(), rates, np.random.default_rng(2))
    gated = simulate(start(PolicySettings(min_impressions=10**9)), rates, np.random.default_rng(2))
    # Thompson moves traffic to b: at most 1,000 a day x 1% x 30 days = 300 clicks.
    assert 100 < lean.clicks_gained[1] < 300
    # The gate keeps the split equal: only the multinomial noise around 500/500 is left.
    assert abs(gated.clicks_gained[1]) < 10


def test_a_rollout_keeps_the_floor_for_the_loser():
    policy = PolicySettings(auto_rollout=True, min_allocation=0.1)
    futures = engine.Futures.begin(start(policy), 50)
    rng = np.random.default_rng(3)
    for day in range(1, 31):
        shown = rng.multinomial(DAILY, futures.shares)
        futures.add_day(shown, rng.binomial(shown, np.tile(RATES, (50, 1))), policy)
        declared = engine.night(start(policy), futures, day, rng)
    assert declared.mean() > 0.5
    assert np.allclose(futures.shares[declared].min(axis=1), 0.1)


def test_the_outlook_is_seeded_and_cached():
    engine._cache.clear()
    first = outlook(start(name="seeded"))
    assert outlook(start(name="seeded")) is first
    engine._cache.clear()
    again = outlook(start(name="seeded"))
    assert again is not first and again == first


def test_a_window_counts_only_the_last_days_in_the_futures():
    policy = PolicySettings(window_days=2)
    windowed = dataclasses.replace(start(policy), recent=(((500, 20), (500, 25)),))
    futures = engine.Futures.begin(windowed, 1)
    futures.add_day(np.array([[100, 300]]), np.array([[1, 3]]), policy)
    futures.add_day(np.array([[10, 30]]), np.array([[0, 1]]), policy)
    assert futures.counted[0].tolist() == [[110.0, 1.0], [330.0, 4.0]]
    assert futures.impressions[0].tolist() == [610, 830]


# --- the endpoint --------------------------------------------------------------------


def post(client, day: str, a: tuple, b: tuple, experiment="e1"):
    variants = [
        {"variant_id": "a", "impressions": a[0], "clicks": a[1]},
        {"variant_id": "b", "impressions": b[0], "clicks": b[1]},
    ]
    body = {"experiment_id": experiment, "date": day, "variants": variants}
    assert client.post("/data", json=body).status_code == 200


def test_the_outlook_endpoint_says_when_a_winner_would_come(client):
    post(client, "2025-12-01", (500, 20), (500, 25))
    body = client.get("/experiments/e1/outlook").json()
    assert body["declared_now"] is False
    assert body["daily_impressions"] == 1000 and body["simulations"] == engine.SIMULATIONS
    assert 1 <= body["days_to_winner"]["median"] <= 30
    assert body["sentences"][1].startswith("A winner would be declared in about")


def test_the_outlook_endpoint_says_when_a_winner_is_already_there(client):
    post(client, "2025-12-01", (50_000, 2000), (50_000, 3000))
    body = client.get("/experiments/e1/outlook").json()
    assert body["declared_now"] is True
    assert body["days_to_winner"] is None


def test_the_outlook_of_an_unknown_experiment_is_404(client):
    assert client.get("/experiments/nope/outlook").status_code == 404


def test_no_traffic_in_the_last_days_gives_no_outlook(client):
    post(client, "2025-12-01", (0, 0), (0, 0))
    body = client.get("/experiments/e1/outlook").json()
    assert body["days_to_winner"] is None and body["simulations"] is None
    assert body["sentences"][1].startswith("No outlook yet")
