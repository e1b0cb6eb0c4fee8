"""GET /experiments and GET /experiments/{id}: what exists and how each arm is doing."""

import pytest
from freezegun import freeze_time

from core.beta import credible_interval
from tests.helpers import CONTRACT_POST


def test_experiments_lists_names_variant_counts_and_latest_allocation(client):
    client.post("/data", json=CONTRACT_POST)
    client.post("/data", json={**CONTRACT_POST, "experiment_id": "b_test"})
    client.post("/recompute", json={"experiment_id": "ctr_test"})
    listed = client.get("/experiments").json()
    assert [e["experiment_id"] for e in listed] == ["b_test", "ctr_test"]
    assert [e["variants"] for e in listed] == [2, 2]
    assert listed[0]["latest_allocation_date"] is None
    assert listed[1]["latest_allocation_date"] is not None
    assert (
        client.get("/experiments", params={"limit": 1, "offset": 1}).json()[0]["experiment_id"]
        == "ctr_test"
    )


@freeze_time("2025-12-22 23:50:00")
def test_experiment_detail_has_totals_posterior_and_latest_allocation(client):
    client.post("/data", json=CONTRACT_POST)
    client.post("/data", json={**CONTRACT_POST, "date": "2025-12-21"})
    client.post("/recompute")
    body = client.get("/experiments/ctr_test").json()
    control, variant = body["variants"]
    assert (control["impressions"], control["clicks"]) == (2000, 100)
    assert control["posterior_mean"] == pytest.approx(101 / 2002)
    low, high = control["credible_interval_95"]
    assert low < control["posterior_mean"] < high
    assert variant["probability_best"] > 0.99
    assert control["probability_best"] + variant["probability_best"] == pytest.approx(1.0)
    assert body["latest_allocation"]["date"] == "2025-12-23"
    assert len(body["latest_allocation"]["allocations"]) == 2


def test_unknown_experiment_detail_is_404(client):
    assert client.get("/experiments/missing").status_code == 404


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 5000}, {"offset": -1}, {"limit": "x"}])
def test_bad_paging_is_422(client, params):
    response = client.get("/experiments", params=params)
    assert response.status_code == 422
    assert next(iter(params)) in response.json()["message"]


def test_credible_interval_matches_known_beta_quantiles():
    # Beta(2, 2): the 2.5% quantile is 0.094299 (from the closed-form CDF 3x^2 - 2x^3).
    low, high = credible_interval(2.0, 2.0)
    assert low == pytest.approx(0.094299, abs=1e-4)
    assert high == pytest.approx(1 - 0.094299, abs=1e-4)
    # Beta(1, 1) is uniform.
    assert credible_interval(1.0, 1.0) == pytest.approx((0.025, 0.975), abs=1e-4)


def test_offset_beyond_a_64_bit_integer_is_a_422_not_a_500(client):
    response = client.get("/experiments", params={"offset": 2**63})
    assert response.status_code == 422
    assert "offset" in response.json()["message"]


def test_times_carry_their_utc_offset(client):
    client.post("/data", json=CONTRACT_POST)
    created = client.get("/experiments").json()[0]["created_at"]
    assert created.endswith("Z") or created.endswith("+00:00")
    assert client.get("/experiments/ctr_test").json()["created_at"] == created


@freeze_time("2025-12-22 23:50:00")
def test_probability_best_equals_the_published_probability_with_no_new_data(client):
    client.post("/data", json=CONTRACT_POST)
    assert client.post("/recompute").status_code == 200
    published = client.get("/allocation", params={"experiment_id": "ctr_test"}).json()
    detail = client.get("/experiments/ctr_test").json()
    assert [v["probability_best"] for v in detail["variants"]] == [
        a["probability"] for a in published["allocations"]
    ]
    assert detail["winner"]["probability_best"] == max(
        a["probability"] for a in published["allocations"]
    )
