"""method = "exact": P(best) by integration agrees with Monte Carlo and the fine reference."""

from datetime import date

import numpy as np
import pytest

from core.beta import exact_prob_best
from core.sampling import Prior, experiment_seed, posterior, posterior_draws, prob_best
from tests.reference import reference_prob_best

SAMPLES = 10_000
CASES = {
    "2 arms": ([1000, 1000], [50, 70]),
    "3 arms": ([200, 1500, 800], [10, 90, 45]),
    "5 arms, one concentrated": ([1_000_000, 400, 5000, 20, 3000], [30_000, 13, 160, 1, 95]),
    "10 arms, near ties": (
        [5000, 5200, 4800, 5100, 5000, 4900, 5300, 5000, 5050, 4950],
        [250, 265, 240, 262, 255, 244, 270, 251, 258, 247],
    ),
}


@pytest.mark.parametrize("impressions,clicks", CASES.values(), ids=CASES.keys())
def test_monte_carlo_is_within_four_standard_errors_of_exact(impressions, clicks):
    alpha, beta = posterior(impressions, clicks, Prior())
    exact = exact_prob_best(alpha, beta)
    sampled = prob_best(
        posterior_draws(alpha, beta, SAMPLES, experiment_seed("exact", date(2025, 12, 23)))
    )
    tolerance = 4 * np.sqrt(exact * (1 - exact) / SAMPLES) + 1e-4
    assert np.all(np.abs(sampled - exact) <= tolerance), (sampled, exact)


@pytest.mark.parametrize("impressions,clicks", CASES.values(), ids=CASES.keys())
def test_exact_matches_a_fine_reference_integration(impressions, clicks):
    alpha, beta = posterior(impressions, clicks, Prior())
    assert exact_prob_best(alpha, beta) == pytest.approx(reference_prob_best(alpha, beta), abs=1e-4)


def test_exact_sums_to_one_and_is_symmetric_for_identical_arms():
    alpha, beta = posterior([500] * 4, [25] * 4, Prior())
    assert exact_prob_best(alpha, beta) == pytest.approx([0.25] * 4, abs=1e-6)


def test_exact_handles_a_posterior_concentrated_by_a_million_impressions():
    alpha, beta = posterior([1_000_000, 1_000_000], [50_000, 50_400], Prior())
    result = exact_prob_best(alpha, beta)
    assert result == pytest.approx(reference_prob_best(alpha, beta), abs=1e-4)
    assert result[1] > 0.9


def test_exact_with_many_arms_stays_bounded_and_agrees_with_sampling():
    # 60 arms: the grid is capped (MAX_GRID_POINTS), and the result still matches the draws.
    alpha = 50.0 + np.arange(60) * 0.5
    beta = np.full(60, 950.0)
    exact = exact_prob_best(alpha, beta)
    sampled = prob_best(posterior_draws(alpha, beta, 10_000, 11))
    assert exact.sum() == pytest.approx(1.0)
    assert np.all(np.abs(sampled - exact) <= 4 * np.sqrt(exact * (1 - exact) / 10_000) + 1e-3)
