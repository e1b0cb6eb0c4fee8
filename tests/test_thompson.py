"""The sampler against an exact reference: P(best) by numerical integration."""

import math
from datetime import date

import numpy as np
import pytest

from core.policy import equal_split, round_to_hundred
from core.sampling import Prior, experiment_seed, posterior, posterior_draws, prob_best, win_counts
from tests.reference import reference_prob_best

SAMPLES = 10_000


CASES = {
    "two arms, README example": ([1000, 1000], [50, 70]),
    "three arms, unequal sizes": ([200, 1500, 800], [10, 90, 45]),
    "five arms, one concentrated": ([1_000_000, 400, 5000, 20, 3000], [30_000, 13, 160, 1, 95]),
    "five arms, near ties": ([10_000] * 5, [500, 505, 498, 510, 502]),
}


@pytest.mark.parametrize("impressions,clicks", CASES.values(), ids=CASES.keys())
def test_prob_best_within_four_standard_errors_of_exact(impressions, clicks):
    alpha, beta = posterior(impressions, clicks, Prior())
    exact = reference_prob_best(alpha, beta)
    assert exact.sum() == pytest.approx(1.0, abs=1e-6)
    sampled = prob_best(
        posterior_draws(alpha, beta, SAMPLES, experiment_seed("ref", date(2025, 12, 23)))
    )
    tolerance = 4 * np.sqrt(exact * (1 - exact) / SAMPLES) + 1e-4
    assert np.all(np.abs(sampled - exact) <= tolerance), (sampled, exact)


def test_reference_integration_handles_concentrated_posteriors():
    # Two arms with ~1e6 impressions each: the mass sits in a sliver of [0, 1].
    alpha, beta = posterior([1_000_000, 1_000_000], [50_000, 50_400], Prior())
    exact = reference_prob_best(alpha, beta)
    assert exact.sum() == pytest.approx(1.0, abs=1e-6)
    assert exact[1] > 0.9


def test_readme_example_gives_about_97_percent_to_variant():
    alpha, beta = posterior([1000, 1000], [50, 70], Prior())
    sampled = prob_best(
        posterior_draws(alpha, beta, SAMPLES, experiment_seed("ctr_test", date(2025, 12, 23)))
    )
    assert round_to_hundred(sampled)[1] == pytest.approx(97.0, abs=1.0)


def test_same_seed_gives_identical_probabilities():
    alpha, beta = posterior([500, 500, 500], [20, 25, 30], Prior())
    seed = experiment_seed("exp", date(2025, 1, 2))
    assert np.array_equal(
        prob_best(posterior_draws(alpha, beta, SAMPLES, seed)),
        prob_best(posterior_draws(alpha, beta, SAMPLES, seed)),
    )


def test_seed_depends_on_experiment_and_date_and_fits_signed_64_bits():
    seeds = {
        experiment_seed("a", date(2025, 1, 1)),
        experiment_seed("a", date(2025, 1, 2)),
        experiment_seed("b", date(2025, 1, 1)),
    }
    assert len(seeds) == 3
    assert all(0 <= s < 2**63 for s in seeds)


def test_posterior_adds_counts_to_the_prior():
    alpha, beta = posterior([1000], [50], Prior(2.0, 3.0))
    assert (alpha[0], beta[0]) == (52.0, 953.0)


@pytest.mark.parametrize("arms", [2, 3, 7, 20, 25])
def test_many_arms_sum_to_one(arms):
    rng = np.random.default_rng(arms)
    impressions = rng.integers(100, 10_000, arms)
    clicks = (impressions * rng.uniform(0.01, 0.1, arms)).astype(int)
    alpha, beta = posterior(impressions, clicks, Prior())
    probabilities = prob_best(posterior_draws(alpha, beta, SAMPLES, 7))
    assert probabilities.shape == (arms,)
    assert probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "probabilities",
    [[1 / 3] * 3, [0.0304, 0.9696], [0.1234, 0.2345, 0.6421], [1.0, 0.0], [1 / 7] * 7, [0.5] * 2],
)
def test_percentages_sum_to_exactly_100(probabilities):
    percentages = round_to_hundred(probabilities)
    assert sum(round(p * 10) for p in percentages) == 1000
    assert math.fsum(percentages) == 100.0
    assert all(round(p, 1) == p for p in percentages)


def test_largest_remainder_goes_to_largest_fraction():
    assert round_to_hundred([0.12345, 0.45678, 0.41977]) == [12.3, 45.7, 42.0]


def test_equal_split_is_deterministic():
    assert equal_split(3) == [33.4, 33.3, 33.3]
    assert equal_split(2) == [50.0, 50.0]


def numpy_round_to_hundred(probabilities) -> list[float]:
    """The first release's largest-remainder rounding, kept here as the reference."""
    tenths = np.asarray(probabilities, dtype=np.float64) * 1000
    floors = np.floor(tenths).astype(np.int64)
    order = np.argsort(-(tenths - floors), kind="stable")
    floors[order[: 1000 - int(floors.sum())]] += 1
    return [int(t) / 10 for t in floors]


def test_rounding_matches_the_numpy_reference_exactly():
    rng = np.random.default_rng(3)
    cases = [rng.dirichlet(np.ones(k)) for k in rng.integers(1, 30, 2000)]
    cases += [np.bincount(rng.integers(0, k, 10_000), minlength=k) / 10_000 for k in (2, 3, 5)]
    cases += [[0.25] * 4, [1 / 3] * 3, [1.0], [0.0, 1.0, 0.0]]
    for probabilities in cases:
        assert round_to_hundred(probabilities) == numpy_round_to_hundred(probabilities)


@pytest.mark.parametrize("arms", [1, 2, 3, 4, 5, 6, 7, 12])
def test_win_counts_equal_argmax_counts(arms):
    rng = np.random.default_rng(arms)
    draws = rng.beta(np.arange(1, arms + 1), 5.0, size=(10_000, arms))
    expected = np.bincount(draws.argmax(axis=1), minlength=arms)
    assert win_counts(draws).tolist() == expected.tolist()


@pytest.mark.parametrize("arms", [2, 3, 5])
def test_win_counts_give_ties_to_the_first_arm_like_argmax(arms):
    rng = np.random.default_rng(0)
    draws = rng.integers(0, 3, size=(1000, arms)).astype(np.float64)  # many ties
    expected = np.bincount(draws.argmax(axis=1), minlength=arms)
    assert win_counts(draws).tolist() == expected.tolist()
    assert win_counts(draws).sum() == 1000
