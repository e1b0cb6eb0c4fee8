"""sampling.max_active_arms: an experiment cannot grow past it by POST /data, the bulk
loader or an unarchive (422 that says so, nothing stored), so the report and the job hold
a bounded number of draws for any one experiment."""

import dataclasses
import tracemalloc
from datetime import date

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.report import experiment_detail
from ingest.loader import load_file
from ingest.source import open_source
from tests.helpers import NOW, body, row_count, variant

CAP_WORDS = "active arms, more than sampling.max_active_arms"


def capped_settings(settings, cap: int):
    return dataclasses.replace(
        settings, sampling=dataclasses.replace(settings.sampling, max_active_arms=cap)
    )


@pytest.fixture
def capped(settings):
    with TestClient(create_app(capped_settings(settings, 3))) as client:
        yield client


def arms(*names) -> dict:
    return body(variants=[variant(variant_id=name) for name in names])


def loaded(path, max_arms: int):
    """The bulk loader's report for a file, with the arm cap at max_arms."""
    source = open_source(str(path))
    with source.stream:
        return load_file(source, date(2025, 12, 2), max_arms=max_arms)


def test_the_default_cap_refuses_the_101st_arm_and_stores_nothing_of_that_post(client):
    first = body(variants=[variant(variant_id=f"v{i}") for i in range(100)])
    assert client.post("/data", json=first).status_code == 200
    stored = row_count()
    response = client.post("/data", json=arms("v0", "v100"))
    assert response.status_code == 422
    error = response.json()
    assert error["errors"][0]["field"] == "variants"
    assert error["message"] == (
        "variants: experiment 'ctr_test' would have 101 active arms, more than"
        " sampling.max_active_arms (100); archive arms it no longer needs first"
    )
    assert row_count() == stored  # not even v0's new counts


def test_an_archived_arm_makes_room_and_its_unarchive_is_refused_past_the_cap(capped):
    assert capped.post("/data", json=arms("a", "b", "c")).status_code == 200
    assert CAP_WORDS in capped.post("/data", json=arms("d")).json()["message"]
    assert capped.post("/experiments/ctr_test/variants/a/archive").status_code == 200
    assert capped.post("/data", json=arms("d")).status_code == 200
    response = capped.post("/experiments/ctr_test/variants/a/unarchive")
    assert response.status_code == 422
    assert "would have 4 active arms" in response.json()["message"]


def test_the_cap_counts_each_experiment_on_its_own(capped):
    assert capped.post("/data", json=arms("a", "b", "c")).status_code == 200
    other = {**arms("a", "b", "c"), "experiment_id": "other"}
    assert capped.post("/data", json=other).status_code == 200


def test_a_bulk_file_that_takes_an_experiment_past_the_cap_loads_nothing(db, tmp_path):
    path = tmp_path / "wide.csv"
    lines = [f"wide,2025-12-01,v{i},10,1" for i in range(4)] + ["narrow,2025-12-01,a,10,1"]
    path.write_text("experiment_id,date,variant_id,impressions,clicks\n" + "\n".join(lines))
    report = loaded(path, 3)
    assert report.errors == [
        "experiment 'wide' would have 4 active arms, more than sampling.max_active_arms (3);"
        " archive arms it no longer needs first"
    ]
    assert row_count() == (0, 0, 0)
    assert loaded(path, 4).errors == []


def test_the_report_of_the_widest_allowed_experiment_stays_within_its_draws(client, settings):
    wide = body(variants=[variant(variant_id=f"v{i}", clicks=i % 7) for i in range(100)])
    assert client.post("/data", json=wide).status_code == 200
    draws = settings.sampling.samples * 100 * 8  # one samples x arms array of doubles
    tracemalloc.start()
    try:
        experiment_detail("ctr_test", settings, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * draws
