"""POST /data: the public contract, upsert semantics, and bad input that changes nothing."""

import copy
import dataclasses
from datetime import date

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api.app import create_app
from ingest.validation import date_problem
from tests.helpers import CONTRACT_POST, Other, body, row_count, stored_counts, variant


def test_contract_post_is_stored(client):
    response = client.post("/data", json=CONTRACT_POST)
    assert response.status_code == 200
    assert response.json() == {
        "experiment_id": "ctr_test",
        "date": "2025-12-22",
        "variants_stored": 2,
        "new_variants": ["control", "variant"],
    }
    assert stored_counts() == [
        ("2025-12-22", "control", 1000, 50),
        ("2025-12-22", "variant", 1000, 70),
    ]


def test_repost_of_same_day_replaces_counts(client):
    client.post("/data", json=CONTRACT_POST)
    retry = copy.deepcopy(CONTRACT_POST)
    retry["variants"][0]["clicks"] = 55
    assert client.post("/data", json=retry).status_code == 200
    assert client.post("/data", json=retry).json()["new_variants"] == []
    assert stored_counts() == [
        ("2025-12-22", "control", 1000, 55),
        ("2025-12-22", "variant", 1000, 70),
    ]


def test_repost_with_fewer_variants_leaves_the_others(client):
    client.post("/data", json=CONTRACT_POST)
    partial = {
        "experiment_id": "ctr_test",
        "date": "2025-12-22",
        "variants": [{"variant_id": "variant", "impressions": 900, "clicks": 60}],
    }
    client.post("/data", json=partial)
    assert stored_counts() == [
        ("2025-12-22", "control", 1000, 50),
        ("2025-12-22", "variant", 900, 60),
    ]


def test_new_variant_joins_later(client):
    client.post("/data", json=CONTRACT_POST)
    later = {
        "experiment_id": "ctr_test",
        "date": "2025-12-23",
        "variants": [
            {"variant_id": "control", "impressions": 10, "clicks": 1},
            {"variant_id": "new_arm", "impressions": 10, "clicks": 2},
        ],
    }
    assert client.post("/data", json=later).json()["new_variants"] == ["new_arm"]
    body = client.get("/allocation", params={"experiment_id": "ctr_test"}).json()
    assert [a["variant_id"] for a in body["allocations"]] == ["control", "variant", "new_arm"]


def test_days_are_kept_apart(client):
    client.post("/data", json=CONTRACT_POST)
    client.post("/data", json={**CONTRACT_POST, "date": "2025-12-21"})
    assert len(stored_counts()) == 4


BAD_BODIES = {
    "clicks over impressions": (
        body(variants=[variant(clicks=101)]),
        "clicks (101) must not exceed impressions (100)",
    ),
    "negative impressions": (body(variants=[variant(impressions=-1)]), "variants.0.impressions"),
    "negative clicks": (body(variants=[variant(clicks=-1)]), "variants.0.clicks"),
    "fractional count": (body(variants=[variant(impressions=10.5)]), "variants.0.impressions"),
    "float count": (body(variants=[variant(impressions=100.0)]), "variants.0.impressions"),
    "string count": (body(variants=[variant(clicks="5")]), "variants.0.clicks"),
    "boolean count": (body(variants=[variant(clicks=True)]), "variants.0.clicks"),
    "huge count": (body(variants=[variant(impressions=10**13)]), "variants.0.impressions"),
    "missing clicks": (body(variants=[{"variant_id": "a", "impressions": 1}]), "variants.0.clicks"),
    "missing experiment": ({"date": "2025-12-22", "variants": [variant()]}, "experiment_id"),
    "missing date": ({"experiment_id": "x", "variants": [variant()]}, "date"),
    "missing variants": ({"experiment_id": "x", "date": "2025-12-22"}, "variants"),
    "empty variants": (body(variants=[]), "variants"),
    "duplicate variant": (
        body(variants=[variant(), variant()]),
        "'control' appears more than once",
    ),
    "too many variants": (
        body(variants=[variant(variant_id=f"v{i}") for i in range(101)]),
        "variants",
    ),
    "impossible date": (body(date="2025-02-30"), "date"),
    "malformed date": (body(date="22/12/2025"), "date"),
    "timestamp date": (body(date=1766361600), "date"),
    "date before 2000": (body(date="1999-12-31"), "before 2000-01-01"),
    "empty experiment id": (body(experiment_id=""), "experiment_id"),
    "long experiment id": (body(experiment_id="x" * 129), "experiment_id"),
    "id with quote": (body(experiment_id="a'b"), "experiment_id"),
    "id with space": (body(experiment_id="a b"), "experiment_id"),
    "empty variant id": (body(variants=[variant(variant_id="")]), "variants.0.variant_id"),
    "unknown field": (body(extra=1), "extra"),
    "variants not a list": (body(variants={"a": 1}), "variants"),
    "body is a list": ([body()], "body"),
}


@pytest.mark.parametrize("payload,fragment", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_input_is_rejected_naming_the_problem_and_stores_nothing(client, payload, fragment):
    response = client.post("/data", json=payload)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert fragment in response.json()["message"]
    assert row_count() == (0, 0, 0)


@pytest.mark.parametrize("content", [b"not json", b"", b"{", b"\xff\xfe", b"null"])
def test_non_json_body_is_a_422(client, content):
    response = client.post("/data", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["message"].startswith("body")
    assert row_count() == (0, 0, 0)


def test_one_bad_variant_rejects_the_whole_post(client):
    payload = body(variants=[variant(), variant(variant_id="b", clicks=500)])
    assert client.post("/data", json=payload).status_code == 422
    assert row_count() == (0, 0, 0)


@freeze_time("2025-12-22 12:00:00")
def test_tomorrow_is_accepted_but_not_later(client):
    assert client.post("/data", json=body(date="2025-12-23")).status_code == 200
    response = client.post("/data", json=body(date="2025-12-24"))
    assert response.status_code == 422
    assert "more than one day after today (2025-12-22)" in response.json()["message"]


@pytest.mark.parametrize(
    "day,problem",
    [
        (date(1999, 12, 31), "date 1999-12-31 is before 2000-01-01"),
        (date(2000, 1, 1), None),
        (date(2025, 12, 22), None),
        (date(2025, 12, 23), None),
        (date(2025, 12, 24), "date 2025-12-24 is more than one day after today (2025-12-22)"),
    ],
)
def test_dates_are_accepted_from_2000_01_01_to_tomorrow(day, problem):
    assert date_problem(day, date(2025, 12, 22)) == problem


def test_the_first_accepted_date_is_stored(client):
    assert client.post("/data", json=body(date="2000-01-01")).status_code == 200
    assert stored_counts()[0][0] == "2000-01-01"


@freeze_time("2025-12-22 23:30:00")
def test_today_is_the_configured_zones_day(settings):
    berlin = dataclasses.replace(settings.schedule, timezone="Europe/Berlin")
    with TestClient(create_app(dataclasses.replace(settings, schedule=berlin))) as client:
        # 23:30 UTC is already the 23rd in Berlin: its tomorrow is the 24th.
        assert client.post("/data", json=body(date="2025-12-24")).status_code == 200
        response = client.post("/data", json=body(date="2025-12-25"))
    assert response.status_code == 422
    assert "after today (2025-12-23)" in response.json()["message"]


def test_unknown_route_and_method_are_json_errors(client):
    assert client.get("/nope").json()["error"] == "not_found"
    response = client.get("/data")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


def test_body_that_is_not_utf8_is_a_422_not_a_400(client):
    for path in ("/data", "/recompute"):
        response = client.post(
            path, content=b"P\t\xff\xfei'\xee", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, path
        assert response.json()["message"].startswith("body")


def test_405_lists_every_method_the_path_serves(client):
    client.post("/data", json=CONTRACT_POST)
    response = client.request("OPTIONS", "/experiments/ctr_test/settings")
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"GET", "PUT"}


def test_write_lock_held_past_the_busy_timeout_is_a_503_that_stores_nothing(settings):
    quick = dataclasses.replace(settings.database, busy_timeout_ms=50)
    with TestClient(create_app(dataclasses.replace(settings, database=quick))) as client:
        with Other(settings) as holder:
            holder.begin_writes_blocked()  # another process's long write, say a bulk load
            try:
                response = client.post("/data", json=CONTRACT_POST)
            finally:
                holder.rollback()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "busy"
        assert row_count() == (0, 0, 0)
        assert client.post("/data", json=CONTRACT_POST).status_code == 200
