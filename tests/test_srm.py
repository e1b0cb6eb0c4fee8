"""Sample-ratio check and value delivered: the statistics, then through GET /experiments/{id}."""

import math

import pytest

from core.srm import chi_square_sf, clicks_gained, sample_ratio
from scheduler.job import run_job
from tests.helpers import utc


@pytest.mark.parametrize(
    "statistic,dof,p_value",
    [
        (3.841458820694124, 1, 0.05),
        (5.991464547107979, 2, 0.05),
        (10.827566170662733, 1, 0.001),
        (16.26623619623813, 3, 0.001),
        (30.0, 10, 0.000856641),
        (0.5, 4, math.exp(-0.25) * 1.25),  # closed form for 4 degrees of freedom
    ],
)
def test_chi_square_p_values_match_known_values(statistic, dof, p_value):
    assert chi_square_sf(statistic, dof) == pytest.approx(p_value, rel=1e-5)


@pytest.mark.parametrize("x", [0.01, 0.5, 2.0, 9.0, 40.0])
def test_one_degree_of_freedom_matches_the_complementary_error_function(x):
    assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9)


def test_a_router_that_follows_the_split_is_not_flagged():
    result = sample_ratio([503, 497], [0.5, 0.5])
    assert result.degrees_of_freedom == 1
    assert not result.flagged


def test_a_skewed_router_is_flagged():
    assert sample_ratio([700, 300], [0.5, 0.5]).flagged


def test_no_check_when_an_arm_expects_fewer_than_five():
    assert sample_ratio([98, 2], [0.97, 0.03]) is None
    assert sample_ratio([1000], [1.0]) is None


def test_clicks_gained_follows_the_formula():
    # 1000 impressions, 80/20 served instead of 50/50, rates 7% and 5%.
    assert clicks_gained(1000, [0.2, 0.8], [0.05, 0.07]) == pytest.approx(
        1000 * ((0.2 - 0.5) * 0.05 + (0.8 - 0.5) * 0.07)
    )


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
    run_job(utc(2025, 12, 21, 23, 50), settings, "nightly")


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


def test_days_before_the_first_allocation_are_not_checked(client, settings):
    post_day(client, "2025-12-21", (900, 50), (100, 7))
    report = client.get("/experiments/ctr_test").json()["sample_ratio"]
    assert report["checked_days"] == 0 and report["latest"] is None


def test_value_delivered_counts_days_served_with_a_published_split(client, settings):
    post_day(client, "2025-12-21", (1000, 50), (1000, 70))
    run_job(utc(2025, 12, 21, 23, 50), settings, "nightly")
    served = client.get("/experiments/ctr_test/allocations").json()[0]
    control_share = served["allocations"][0]["percentage"] / 100
    post_day(client, "2025-12-22", (100, 5), (900, 63))
    body = client.get("/experiments/ctr_test").json()
    means = [v["posterior_mean"] for v in body["variants"]]
    expected = 1000 * ((control_share - 0.5) * means[0] + (0.5 - control_share) * means[1])
    assert body["value_delivered"]["days"] == 1
    assert body["value_delivered"]["clicks_gained"] == pytest.approx(expected)
    assert body["value_delivered"]["clicks_gained"] > 0
