"""Sample-ratio check and value delivered: the statistics, then through GET /experiments/{id}."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from core.srm import SRM_ALPHA, binomial_tails, clicks_gained, sample_ratio
from tests.helpers import run_at, utc

# --- the exact test, against exact arithmetic ------------------------------------------


def exact_tails(k: int, n: int, p: Fraction) -> tuple[Fraction, Fraction]:
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(pmf[: k + 1]), sum(pmf[k:])


def exact_p_value(observed: list[int], shares: list[Fraction]) -> Fraction:
    """The check's definition in rational arithmetic: each arm's two-sided binomial p-value
    (twice its smaller tail), the smallest times the number of arms (one test for two)."""
    n, arms = sum(observed), len(observed)
    arm_p = [min(1, 2 * min(exact_tails(o, n, s))) for o, s in zip(observed, shares, strict=True)]
    return min(1, min(arm_p) * (1 if arms == 2 else arms))


def multinomial_outcomes(n: int, shares: list[Fraction]):
    """Every outcome of n impressions over the arms, with its probability."""
    for cut in itertools.combinations(range(n + len(shares) - 1), len(shares) - 1):
        counts = [b - a - 1 for a, b in zip((-1, *cut), (*cut, n + len(shares) - 1), strict=True)]
        weight = Fraction(math.factorial(n))
        for c, s in zip(counts, shares, strict=True):
            weight *= s**c / math.factorial(c)
        yield counts, weight


@pytest.mark.parametrize(
    "observed,shares,p_value",
    [
        ([10, 0], [0.5, 0.5], 2 / 2**10),  # twice P(X >= 10) for Binomial(10, 1/2)
        ([11, 0], [0.5, 0.5], 2 / 2**11),
        ([1, 0], [0.5, 0.5], 1.0),
        ([3, 0, 0], [0.1, 0.1, 0.8], 3 * 2 * 0.1**3),  # arm 1: P(X >= 3) = 0.001
        ([0, 0, 5], [0.1, 0.1, 0.8], 1.0),
        ([1, 99], [0.0, 1.0], 0.0),  # traffic to an arm at 0%: impossible
        ([0, 100], [0.0, 1.0], 1.0),
    ],
)
def test_p_values_match_hand_computed_values(observed, shares, p_value):
    assert sample_ratio(observed, shares).p_value == pytest.approx(p_value, rel=1e-12)


def test_ten_to_nothing_on_an_even_split_is_not_flagged_and_eleven_is():
    assert not sample_ratio([10, 0], [0.5, 0.5]).flagged  # p = 0.00195
    assert sample_ratio([11, 0], [0.5, 0.5]).flagged  # p = 0.00098


@pytest.mark.parametrize(
    "n,shares",
    [(12, ["1/250", "199/200", "1/1000"]), (9, ["1/10", "3/10", "3/5"]), (40, ["1/8", "7/8"])],
)
def test_p_values_match_exact_enumeration(n, shares):
    shares = [Fraction(s) for s in shares]
    for counts, _ in multinomial_outcomes(n, shares):
        expected = float(exact_p_value(counts, shares))
        assert sample_ratio(counts, [float(s) for s in shares]).p_value == pytest.approx(
            expected, rel=1e-9, abs=1e-300
        )


@pytest.mark.parametrize("alpha", [SRM_ALPHA, 0.01, 0.05])
@pytest.mark.parametrize(
    "n,shares", [(25, ["1/250", "199/200", "1/1000"]), (30, ["1/20", "19/20"]), (14, ["1/3"] * 3)]
)
def test_exact_chance_of_p_below_alpha_is_at_most_alpha(n, shares, alpha):
    """Summed over every outcome of a router that follows the split: no approximation."""
    shares = [Fraction(s) for s in shares]
    size = sum(
        weight
        for counts, weight in multinomial_outcomes(n, shares)
        if exact_p_value(counts, shares) < Fraction(alpha)
    )
    assert size <= Fraction(alpha)


def test_binomial_tails_hold_far_in_the_tail_and_at_large_totals():
    lower, upper = binomial_tails(110, 400, 0.01)
    exact = exact_tails(110, 400, Fraction(0.01))
    assert upper == pytest.approx(float(exact[1]), rel=1e-10)  # about 3.7e-121
    assert lower == 1.0
    lower, upper = binomial_tails(500_000, 1_000_000, 0.5)
    assert lower == pytest.approx(upper) and lower == pytest.approx(0.5 + 0.0003989, rel=1e-6)


# --- behaviour ---------------------------------------------------------------------------


def test_a_router_that_follows_the_split_is_not_flagged():
    result = sample_ratio([503, 497], [0.5, 0.5])
    assert result.degrees_of_freedom == 1
    assert result.chi_square == pytest.approx(0.036)  # Pearson's statistic
    assert not result.flagged


def test_a_skewed_router_is_flagged():
    assert sample_ratio([700, 300], [0.5, 0.5]).flagged


def test_a_router_ignoring_a_lopsided_split_is_flagged():
    # 0.4% / 99.5% / 0.1% planned, 1000 each served: arms expecting 12 and 3 impressions.
    result = sample_ratio([1000, 1000, 1000], [0.004, 0.995, 0.001])
    assert result.flagged
    assert result.degrees_of_freedom == 2


def test_nothing_to_check_with_one_arm_or_no_impressions():
    assert sample_ratio([1000], [1.0]) is None
    assert sample_ratio([0, 0], [0.5, 0.5]) is None


def binomial_upper_bound(days: int, rate: float, confidence: float) -> int:
    """The smallest count c with P(Binomial(days, rate) > c) < 1 - confidence."""
    log_pmf = days * math.log1p(-rate)
    below = 0.0
    for count in range(days + 1):
        below += math.exp(log_pmf)
        if below > confidence:
            return count
        log_pmf += math.log((days - count) / (count + 1) * rate / (1 - rate))
    return days


SPLITS = [
    [0.01, 0.99],
    [0.03, 0.97],
    [0.1, 0.9],
    [0.004, 0.995, 0.001],
    [0.002, 0.049, 0.949],
    [0.05, 0.15, 0.8],
    [0.5, 0.5],
    [0.25, 0.25, 0.25, 0.25],
]
TOTALS = [3, 20, 60, 200, 500, 1500, 3000]


def test_false_alarms_stay_at_the_nominal_rate_under_exact_multinomial_routing():
    rng = np.random.default_rng(20251222)
    days, flagged = 20_000, 0
    for day in range(days):
        shares = SPLITS[day % len(SPLITS)]
        total = TOTALS[day // len(SPLITS) % len(TOTALS)]
        result = sample_ratio(rng.multinomial(total, shares).tolist(), shares)
        flagged += bool(result and result.flagged)
    assert flagged <= binomial_upper_bound(days, SRM_ALPHA, 0.999)  # 34 of 20,000


@pytest.mark.parametrize(
    "share,total", [(0.01, 500), (0.01, 3000), (0.02, 300), (0.03, 200), (0.1, 50), (0.2, 35)]
)
def test_exact_chance_of_a_false_alarm_on_two_arms_is_at_most_alpha(share, total):
    """Summed over all outcomes; the chi-square check flagged 1.5 to 3 times too often here."""
    size = 0.0
    for k in range(total + 1):
        if sample_ratio([k, total - k], [share, 1 - share]).flagged:
            log_pmf = math.lgamma(total + 1) - math.lgamma(k + 1) - math.lgamma(total - k + 1)
            size += math.exp(log_pmf + k * math.log(share) + (total - k) * math.log1p(-share))
    assert size <= SRM_ALPHA


def test_clicks_gained_follows_the_formula():
    # 1000 impressions served 200 / 800 instead of 500 / 500, rates 5% and 7%.
    assert clicks_gained([200, 800], [0.05, 0.07]) == pytest.approx(
        (200 - 500) * 0.05 + (800 - 500) * 0.07
    )


def test_an_evenly_served_day_gains_nothing_whatever_the_plan():
    assert clicks_gained([500, 500], [0.05, 0.07]) == 0.0


# --- through GET /experiments/{id} -------------------------------------------------------


def post_day(client, day, control, variant):
    body = {
        "experiment_id": "ctr_test",
        "date": day,
        "variants": [
            {"variant_id": "control", "impressions": control[0], "clicks": control[1]},
            {"variant_id": "variant", "impressions": variant[0], "clicks": variant[1]},
        ],
    }
    assert client.post("/data", json=body).status_code == 200


def equal_split_experiment(client, settings):
    """Day 1 data, then a run that publishes an equal split (exploration) for day 2."""
    post_day(client, "2025-12-21", (1000, 50), (1000, 70))
    client.put("/experiments/ctr_test/settings", json={"exploration_days": 5})
    run_at(utc(2025, 12, 21, 23, 50), settings)


def lopsided_experiment(client, settings) -> float:
    """Day 1 data, then a run that publishes about 3/97 for day 2; the control's share."""
    post_day(client, "2025-12-21", (1000, 50), (1000, 70))
    run_at(utc(2025, 12, 21, 23, 50), settings)
    served = client.get("/experiments/ctr_test/allocations").json()[0]
    return served["allocations"][0]["percentage"] / 100


def test_skewed_router_is_flagged_on_the_experiment(client, settings):
    equal_split_experiment(client, settings)
    post_day(client, "2025-12-22", (700, 35), (300, 21))
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert report["suspect"] is True
    assert report["checked_days"] == 1
    assert report["flagged_days"][0]["date"] == "2025-12-22"
    assert report["flagged_days"][0]["p_value"] < 0.001


def test_router_following_the_split_is_not_flagged_on_the_experiment(client, settings):
    equal_split_experiment(client, settings)
    post_day(client, "2025-12-22", (510, 25), (490, 34))
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert report["suspect"] is False
    assert report["latest"]["p_value"] > 0.001


def test_a_small_day_ignoring_a_lopsided_split_is_checked_and_flagged(client, settings):
    assert lopsided_experiment(client, settings) < 0.05  # the control expects under 5 of 100
    post_day(client, "2025-12-22", (50, 3), (50, 4))
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert (report["checked_days"], report["suspect"]) == (1, True)


def test_days_before_the_first_allocation_are_not_checked(client, settings):
    post_day(client, "2025-12-21", (900, 50), (100, 7))
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert report["checked_days"] == 0 and report["latest"] is None


def test_a_day_whose_split_changed_during_it_is_not_checked(client, settings):
    equal_split_experiment(client, settings)
    client.put("/experiments/ctr_test/settings", json={"exploration_days": 0})
    run_at(utc(2025, 12, 22, 12, 0), settings, "manual")  # served from noon on the 22nd
    post_day(client, "2025-12-22", (600, 30), (1400, 98))  # half a day of each split
    body = client.get("/experiments/ctr_test").json()
    assert body["sample_ratio"]["checked_days"] == 0
    assert body["value_delivered"]["days"] == 1


def test_value_delivered_counts_the_impressions_each_arm_was_served(client, settings):
    lopsided_experiment(client, settings)
    post_day(client, "2025-12-22", (100, 5), (900, 63))
    body = client.get("/experiments/ctr_test").json()
    means = [v["posterior_mean"] for v in body["variants"]]
    expected = (100 - 500) * means[0] + (900 - 500) * means[1]
    assert body["value_delivered"]["days"] == 1
    assert body["value_delivered"]["clicks_gained"] == pytest.approx(expected)
    assert body["value_delivered"]["clicks_gained"] > 0


def test_a_router_serving_an_even_split_delivers_nothing_over_it(client, settings):
    lopsided_experiment(client, settings)
    post_day(client, "2025-12-22", (500, 25), (500, 35))  # the plan said about 3/97
    body = client.get("/experiments/ctr_test").json()
    assert body["sample_ratio"]["suspect"] is True
    assert body["value_delivered"] == {"clicks_gained": 0.0, "days": 1}


def test_a_day_is_checked_though_the_nightly_publishes_the_next_split_before_midnight(
    client, settings
):
    equal_split_experiment(client, settings)
    post_day(client, "2025-12-22", (700, 35), (300, 21))
    run_at(utc(2025, 12, 22, 23, 50), settings)  # the next night's split, ten minutes early
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert (report["checked_days"], report["suspect"]) == (1, True)
    assert report["flagged_days"][0]["date"] == "2025-12-22"
