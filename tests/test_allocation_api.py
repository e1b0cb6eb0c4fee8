"""GET /allocation and POST /recompute through the app on a temporary SQLite file."""

import time

import pytest
from freezegun import freeze_time

from core.db import database
from core.schema import Run
from scheduler.job import run_job
from tests.helpers import CONTRACT_POST, utc


def allocation(client, experiment_id="ctr_test"):
    return client.get("/allocation", params={"experiment_id": experiment_id})


@freeze_time("2025-12-22 23:50:00")
def test_contract_walkthrough_gives_next_day_split(client):
    assert client.post("/data", json=CONTRACT_POST).status_code == 200
    run = client.post("/recompute")
    assert run.status_code == 200
    assert run.json()["effective_date"] == "2025-12-23"
    assert run.json()["status"] == "success"
    body = allocation(client).json()
    assert body["experiment_id"] == "ctr_test"
    assert body["date"] == "2025-12-23"
    assert body["status"] == "computed"
    control, variant = body["allocations"]
    assert (control["variant_id"], variant["variant_id"]) == ("control", "variant")
    assert variant["percentage"] == pytest.approx(97.0, abs=1.0)
    assert control["percentage"] + variant["percentage"] == 100.0
    assert variant["probability"] == pytest.approx(variant["percentage"] / 100, abs=0.0006)
    assert body["run_id"] == run.json()["run_id"]


def test_unknown_experiment_is_a_json_404(client):
    response = allocation(client, "missing")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "unknown experiment 'missing'"}


def test_missing_experiment_id_is_a_422_naming_it(client):
    response = client.get("/allocation")
    assert response.status_code == 422
    assert "experiment_id" in response.json()["message"]


def test_data_without_a_run_gives_an_equal_split_marked_not_computed(client):
    client.post(
        "/data",
        json={
            **CONTRACT_POST,
            "variants": [
                {"variant_id": v, "impressions": 10, "clicks": 1} for v in ("a", "b", "c")
            ],
        },
    )
    body = allocation(client).json()
    assert body["status"] == "not_computed"
    assert body["date"] is None
    assert [a["percentage"] for a in body["allocations"]] == [33.4, 33.3, 33.3]


def test_recompute_of_one_experiment_leaves_the_others(client):
    client.post("/data", json=CONTRACT_POST)
    client.post("/data", json={**CONTRACT_POST, "experiment_id": "other"})
    run = client.post("/recompute", json={"experiment_id": "ctr_test"}).json()
    assert run["experiments_processed"] == 1
    assert allocation(client).json()["status"] == "computed"
    assert allocation(client, "other").json()["status"] == "not_computed"


def test_recompute_unknown_experiment_is_404_and_records_no_run(client):
    response = client.post("/recompute", json={"experiment_id": "missing"})
    assert response.status_code == 404
    with database.connection_context():
        assert Run.select().count() == 0


def test_recompute_with_bad_body_is_422(client):
    response = client.post("/recompute", json={"experiment": "x"})
    assert response.status_code == 422
    assert "experiment" in response.json()["message"]


@freeze_time("2025-12-22 10:00:00")
def test_manual_recompute_replaces_the_pending_day(client):
    client.post("/data", json=CONTRACT_POST)
    first = client.post("/recompute").json()
    client.post(
        "/data",
        json={
            **CONTRACT_POST,
            "variants": [
                {"variant_id": "control", "impressions": 1000, "clicks": 90},
                {"variant_id": "variant", "impressions": 1000, "clicks": 40},
            ],
        },
    )
    second = client.post("/recompute").json()
    assert first["effective_date"] == second["effective_date"] == "2025-12-23"
    body = allocation(client).json()
    assert body["run_id"] == second["run_id"]
    assert body["allocations"][0]["percentage"] > 99


def test_publish_by_another_process_is_served_within_a_second(client, settings):
    client.post("/data", json=CONTRACT_POST)
    assert allocation(client).json()["status"] == "not_computed"
    # The job runs outside the app, as the clock process would; only the database is shared.
    run_job(utc(2025, 12, 22, 23, 50), settings, "nightly")
    deadline = time.monotonic() + 1.0
    while allocation(client).json()["status"] != "computed":
        assert time.monotonic() < deadline, "publish not visible within 1 s"
        time.sleep(0.02)
    assert allocation(client).json()["date"] == "2025-12-23"


def test_get_allocation_does_not_query_the_database(client, monkeypatch):
    client.post("/data", json=CONTRACT_POST)
    client.post("/recompute")

    def no_queries(*args, **kwargs):
        raise AssertionError("GET /allocation queried the database")

    monkeypatch.setattr(database, "execute_sql", no_queries)
    assert allocation(client).status_code == 200
    assert allocation(client, "missing").status_code == 404


def test_openapi_documents_the_contract_with_examples(client):
    schema = client.get("/openapi.json").json()
    get = schema["paths"]["/allocation"]["get"]
    ok = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/AllocationOut")
    components = schema["components"]["schemas"]
    assert components["AllocationOut"]["examples"][0]["date"] == "2025-12-23"
    assert components["DailyMetrics"]["examples"][0] == CONTRACT_POST
    assert "404" in get["responses"]
    assert client.get("/docs").status_code == 200


def test_healthz_reports_database_and_last_nightly_run(client, settings):
    body = client.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["last_nightly_success"] is None
    client.post("/data", json=CONTRACT_POST)
    run_job(utc(2025, 12, 22, 23, 50), settings, "nightly")
    body = client.get("/healthz").json()
    assert body["last_nightly_success"] is not None
    assert body["database"] == "ok"


def test_healthz_is_503_when_the_database_fails(client, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(database, "execute_sql", unreachable)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable: OSError"
