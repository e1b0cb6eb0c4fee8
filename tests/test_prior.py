"""The configured prior and sample count reach every published number: the job's P(best)
and split, and GET /experiments/{id}'s posterior means and P(best)."""

import dataclasses
from datetime import date

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api.app import create_app
from core.policy import round_to_hundred
from core.sampling import Prior, experiment_seed, posterior, posterior_draws, prob_best
from scheduler.job import run_job
from tests.helpers import NOW, allocations, load

# Strong enough to move P(best) well away from what Beta(1, 1) gives on the same counts.
PRIOR = Prior(30.0, 70.0)
SAMPLES = 1000
ARMS = [("control", 200, 10), ("variant", 200, 18)]  # name, impressions, clicks
SEED = experiment_seed("ctr_test", date(2025, 12, 23))  # the day a run at NOW publishes for


def configured(settings):
    sampling = dataclasses.replace(
        settings.sampling, prior_alpha=PRIOR.alpha, prior_beta=PRIOR.beta, samples=SAMPLES
    )
    return dataclasses.replace(settings, sampling=sampling)


def expected_prob_best(prior: Prior) -> list[float]:
    """The sampler on the job's seed and sample count, under the given prior."""
    alpha, beta = posterior([n for _, n, _ in ARMS], [c for _, _, c in ARMS], prior)
    return prob_best(posterior_draws(alpha, beta, SAMPLES, SEED)).tolist()


def load_arms() -> None:
    load(*[("ctr_test", date(2025, 12, 22), *arm) for arm in ARMS])


def test_the_configured_prior_changes_the_reference():
    configured_best, default_best = expected_prob_best(PRIOR), expected_prob_best(Prior())
    assert abs(configured_best[1] - default_best[1]) > 0.05


def test_prior_and_samples_come_from_settings(db, settings):
    load_arms()
    assert run_job(NOW, configured(settings)).status == "success"
    rows = allocations()
    assert [p for _, _, p, _ in rows] == expected_prob_best(PRIOR)
    assert [pct for _, pct, _, _ in rows] == round_to_hundred(expected_prob_best(PRIOR))


@freeze_time("2025-12-22 23:50:00")
def test_experiment_detail_uses_the_configured_prior(settings):
    with TestClient(create_app(configured(settings))) as client:
        variants = [{"variant_id": v, "impressions": n, "clicks": c} for v, n, c in ARMS]
        post = {"experiment_id": "ctr_test", "date": "2025-12-22", "variants": variants}
        assert client.post("/data", json=post).status_code == 200
        arms = client.get("/experiments/ctr_test").json()["variants"]
    assert [a["posterior_mean"] for a in arms] == pytest.approx(
        [(PRIOR.alpha + c) / (PRIOR.alpha + PRIOR.beta + n) for _, n, c in ARMS]
    )
    assert [a["probability_best"] for a in arms] == expected_prob_best(PRIOR)
