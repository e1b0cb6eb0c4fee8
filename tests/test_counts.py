"""The day weights of the aggregation at their edges: a window of N days counts exactly N
(ages 0 to N - 1 as of the run's local day), a discount weighs the run's day 1."""

import dataclasses
from datetime import date, timedelta

import pytest

from core.counts import aggregate_counts
from core.sampling import Prior, experiment_seed, posterior, posterior_draws, prob_best
from scheduler.job import run_job
from tests.helpers import NOW, allocations, load

AS_OF = date(2025, 12, 22)


def policy(settings, **changes):
    return dataclasses.replace(settings.policy, **changes)


def counted(settings, **changes) -> float:
    [totals] = aggregate_counts("e1", as_of=AS_OF, defaults=policy(settings, **changes))
    return totals.arms[0].counted_impressions


def one_day_aged(age: int, impressions: int = 1000) -> None:
    load(("e1", AS_OF - timedelta(days=age), "a", impressions, 0))


@pytest.mark.parametrize("window", [1, 3, 7])
def test_a_window_of_n_days_counts_ages_0_to_n_minus_1(db, settings, window):
    for age in range(window + 2):
        one_day_aged(age, 10**age)  # each day its own decimal digit of the sum
    assert counted(settings, window_days=window) == sum(10**age for age in range(window))


@pytest.mark.parametrize("window", [1, 3, 7])
def test_the_day_aged_exactly_the_window_is_not_counted(db, settings, window):
    one_day_aged(window)
    assert counted(settings, window_days=window) == 0.0
    assert counted(settings, window_days=window + 1) == 1000.0


@pytest.mark.parametrize("age", [0, 1, 5, 30])
def test_a_discounted_day_weighs_discount_to_the_power_of_its_age(db, settings, age):
    one_day_aged(age)
    assert counted(settings, discount=0.5) == pytest.approx(1000 * 0.5**age, rel=1e-12)


def test_a_day_after_the_run_counts_as_age_0(db, settings):
    load(("e1", AS_OF + timedelta(days=1), "a", 1000, 0))
    assert counted(settings, discount=0.5) == 1000.0
    assert counted(settings, window_days=1) == 1000.0


def test_a_one_day_window_in_the_job_counts_only_the_runs_own_day(db, settings):
    # A run at NOW (local day 2025-12-22) publishes for the 23rd from the 22nd alone.
    load(
        ("ctr_test", date(2025, 12, 21), "control", 1000, 90),
        ("ctr_test", date(2025, 12, 21), "variant", 1000, 10),
        ("ctr_test", date(2025, 12, 22), "control", 1000, 50),
        ("ctr_test", date(2025, 12, 22), "variant", 1000, 60),
    )
    run_job(NOW, dataclasses.replace(settings, policy=policy(settings, window_days=1)))
    alpha, beta = posterior([1000, 1000], [50, 60], Prior())
    seed = experiment_seed("ctr_test", date(2025, 12, 23))
    expected = prob_best(posterior_draws(alpha, beta, settings.sampling.samples, seed))
    assert [p for _, _, p, _ in allocations()] == expected.tolist()
