"""Settings, archiving and history through the app, with the job run at a fixed `now`."""

from datetime import date

import pytest

from core.db import database
from core.schema import ExperimentPolicy
from scheduler.job import run_job
from tests.helpers import CONTRACT_POST, NOW, run_at, utc

SETTINGS_URL = "/experiments/ctr_test/settings"


def setup_contract(client):
    assert client.post("/data", json=CONTRACT_POST).status_code == 200


def history(client):
    return client.get("/experiments/ctr_test/allocations").json()


def test_settings_default_to_the_config_and_plain_thompson(client):
    setup_contract(client)
    body = client.get(SETTINGS_URL).json()
    assert body["settings"]["min_allocation"] == 0.0
    assert body["settings"]["method"] == "monte_carlo"
    assert body["overrides"] == {}
    assert [v["archived"] for v in body["variants"]] == [False, False]


def test_put_sets_only_the_fields_sent_and_null_resets_one(client):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"min_allocation": 0.05, "min_impressions": 500})
    body = client.put(SETTINGS_URL, json={"min_impressions": None, "auto_rollout": True}).json()
    assert body["overrides"] == {"min_allocation": 0.05, "auto_rollout": True}
    assert body["settings"]["min_impressions"] == 0
    assert client.get(SETTINGS_URL).json() == body


@pytest.mark.parametrize(
    "payload,field",
    [
        ({"min_allocation": 0.5}, "min_allocation"),
        ({"min_allocation": -0.1}, "min_allocation"),
        ({"window_days": 7, "discount": 0.9}, "window_days"),
        ({"winner_probability": 1.5}, "winner_probability"),
        ({"value_remaining": 0}, "value_remaining"),
        ({"discount": 0}, "discount"),
        ({"method": "guess"}, "method"),
        ({"min_impressions": 10.5}, "min_impressions"),
        ({"auto_rollout": "yes"}, "auto_rollout"),
        ({"exploration_days": "3"}, "exploration_days"),
        ({"samples": 5}, "samples"),
    ],
)
def test_bad_settings_are_422_naming_the_field_and_change_nothing(client, payload, field):
    setup_contract(client)
    response = client.put(SETTINGS_URL, json=payload)
    assert response.status_code == 422
    assert field in response.json()["message"]
    assert client.get(SETTINGS_URL).json()["overrides"] == {}


def test_floor_rejection_says_why(client):
    third = {"variant_id": "third", "impressions": 1000, "clicks": 60}
    client.post("/data", json={**CONTRACT_POST, "variants": [*CONTRACT_POST["variants"], third]})
    message = client.put(SETTINGS_URL, json={"min_allocation": 0.4}).json()["message"]
    assert "0.4 x 3 active arms = 1.2" in message


def test_discount_conflicting_with_a_stored_window_is_rejected(client):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"window_days": 7})
    response = client.put(SETTINGS_URL, json={"discount": 0.9})
    assert response.status_code == 422 and "discount" in response.json()["message"]


def test_unknown_experiment_is_404_on_every_lifecycle_route(client):
    assert client.get("/experiments/nope/settings").status_code == 404
    assert client.put("/experiments/nope/settings", json={}).status_code == 404
    assert client.post("/experiments/nope/archive").status_code == 404
    assert client.get("/experiments/nope/allocations").status_code == 404
    setup_contract(client)
    assert client.post("/experiments/ctr_test/variants/nope/archive").status_code == 404


def test_allocation_carries_its_reason(client):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"min_allocation": 0.1})
    client.post("/recompute")
    body = client.get("/allocation", params={"experiment_id": "ctr_test"}).json()
    assert body["reason"] == "floor_applied"
    assert "floor of 10.0%" in body["explanation"]
    assert min(a["percentage"] for a in body["allocations"]) >= 10.0


def test_placeholder_allocation_says_it_is_not_computed(client):
    setup_contract(client)
    body = client.get("/allocation", params={"experiment_id": "ctr_test"}).json()
    assert body["reason"] == "not_computed"


def test_archived_arm_is_no_longer_allocated_but_keeps_its_history(client, settings):
    setup_contract(client)
    run_job(utc(2025, 12, 21, 23, 50), settings, "nightly")
    client.post("/experiments/ctr_test/variants/control/archive")
    run_job(NOW, settings, "nightly")
    series = history(client)
    assert [len(day["allocations"]) for day in series] == [2, 1]
    assert series[1]["allocations"][0] == {
        "variant_id": "variant",
        "percentage": 100.0,
        "probability": 1.0,
    }
    detail = client.get("/experiments/ctr_test").json()
    assert [v["archived"] for v in detail["variants"]] == [True, False]
    assert detail["variants"][0]["impressions"] == 1000
    assert detail["variants"][0]["probability_best"] is None


def test_unarchived_arm_rejoins_the_next_run(client, settings):
    setup_contract(client)
    client.post("/experiments/ctr_test/variants/control/archive")
    client.post("/experiments/ctr_test/variants/control/unarchive")
    run_job(NOW, settings, "nightly")
    assert len(history(client)[0]["allocations"]) == 2


def test_the_last_active_arm_cannot_be_archived(client):
    setup_contract(client)
    client.post("/experiments/ctr_test/variants/control/archive")
    response = client.post("/experiments/ctr_test/variants/variant/archive")
    assert response.status_code == 422
    assert "variant_id" in response.json()["message"]


def test_unarchive_that_breaks_the_floor_is_rejected(client):
    client.post(
        "/data",
        json={
            **CONTRACT_POST,
            "variants": [
                *CONTRACT_POST["variants"],
                CONTRACT_POST["variants"][0] | {"variant_id": "third"},
            ],
        },
    )
    client.post("/experiments/ctr_test/variants/third/archive")
    client.put(SETTINGS_URL, json={"min_allocation": 0.4})
    response = client.post("/experiments/ctr_test/variants/third/unarchive")
    assert response.status_code == 422
    assert "min_allocation" in response.json()["message"]


def test_archived_experiment_gets_its_likely_best_arm_and_can_resume(client, settings):
    setup_contract(client)
    assert client.post("/experiments/ctr_test/archive").json()["archived"] is True
    run_job(NOW, settings, "nightly")
    latest = history(client)[-1]
    assert latest["reason"] == "experiment_archived"
    assert [a["percentage"] for a in latest["allocations"]] == [0.0, 100.0]
    client.post("/experiments/ctr_test/unarchive")
    run_job(NOW, settings, "nightly")
    assert history(client)[-1]["reason"] == "thompson"


def test_allocation_on_a_date_is_the_one_in_force_that_day(client, settings):
    setup_contract(client)
    run_at(utc(2025, 12, 20, 23, 50), settings)  # for the 21st
    client.put(SETTINGS_URL, json={"min_allocation": 0.2})
    run_at(utc(2025, 12, 22, 23, 50), settings)  # for the 23rd

    def on(day):
        return client.get("/allocation", params={"experiment_id": "ctr_test", "date": day})

    assert on("2025-12-21").json()["reason"] == "thompson"
    assert on("2025-12-22").json()["date"] == "2025-12-21"  # no run for the 22nd
    assert on("2025-12-23").json()["reason"] == "floor_applied"
    assert on("2026-03-01").json()["date"] == "2025-12-23"
    assert on("2025-12-20").json()["date"] == "2025-12-21"  # served from 23:50 that evening
    assert on("2025-12-19").status_code == 404
    assert on("2025-13-01").status_code == 422
    assert "date" in on("yesterday").json()["message"]


def on_day(client, day):
    return client.get("/allocation", params={"experiment_id": "ctr_test", "date": day})


def test_a_manual_recompute_is_in_the_history_of_the_day_it_was_served(client, settings):
    setup_contract(client)
    recompute = run_at(utc(2025, 12, 22, 14, 0), settings, "manual")  # writes the 23rd
    served = on_day(client, "2025-12-22")
    assert served.status_code == 200
    assert served.json()["run_id"] == recompute.run_id
    # Stamped from the run's now, plus the seconds the run took.
    assert served.json()["computed_at"].startswith("2025-12-22T14:00:0")
    assert history(client)[0]["served_from"].startswith("2025-12-22T14:00:0")
    assert on_day(client, "2025-12-21").status_code == 404  # nothing was served yet


def test_a_late_split_is_not_history_before_it_was_published(client, settings):
    setup_contract(client)
    run_at(utc(2025, 12, 20, 23, 50), settings)  # for the 21st
    client.put(SETTINGS_URL, json={"min_allocation": 0.2})
    # The night of the 21st was missed; its catch-up publishes the 22nd at 08:00 that day.
    run_at(utc(2025, 12, 22, 8, 0), settings, "catch_up", effective_date=date(2025, 12, 22))
    assert on_day(client, "2025-12-22").json()["date"] == "2025-12-21"  # at midnight
    assert on_day(client, "2025-12-23").json()["date"] == "2025-12-22"
    assert [d["served_from"][:18] for d in history(client)] == [
        "2025-12-20T23:50:0",
        "2025-12-22T08:00:0",
    ]


def test_series_lists_every_day_with_reason_and_trigger(client, settings):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"exploration_days": 1})  # data starts on the 22nd
    run_job(utc(2025, 12, 21, 23, 50), settings, "nightly")
    run_job(NOW, settings, "nightly")
    series = history(client)
    assert [(d["date"], d["reason"], d["trigger"]) for d in series] == [
        ("2025-12-22", "exploration", "nightly"),
        ("2025-12-23", "thompson", "nightly"),
    ]
    assert series[0]["explanation"] == "Exploration day 1 of 1: equal split."
    assert [a["percentage"] for a in series[0]["allocations"]] == [50.0, 50.0]


def test_manual_recompute_replaces_the_pending_day_and_its_reason(client, settings):
    setup_contract(client)
    run_job(NOW, settings, "nightly")
    client.put(SETTINGS_URL, json={"min_allocation": 0.1})
    run_job(NOW, settings, "manual")
    series = history(client)
    assert len(series) == 1
    assert (series[0]["reason"], series[0]["trigger"]) == ("floor_applied", "manual")


def test_experiment_detail_reports_winner_with_both_numbers(client):
    client.post(
        "/data",
        json={
            **CONTRACT_POST,
            "variants": [
                {"variant_id": "control", "impressions": 20_000, "clicks": 1000},
                {"variant_id": "variant", "impressions": 20_000, "clicks": 1400},
            ],
        },
    )
    body = client.get("/experiments/ctr_test").json()
    winner = body["winner"]
    assert winner["declared"] is True and winner["variant_id"] == "variant"
    assert winner["probability_best"] >= 0.95
    assert winner["value_remaining"] < 0.01
    assert (winner["winner_probability"], winner["value_remaining_threshold"]) == (0.95, 0.01)
    assert body["settings"]["winner_probability"] == 0.95


def test_no_winner_on_a_close_race(client):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"winner_probability": 0.99})
    winner = client.get("/experiments/ctr_test").json()["winner"]
    assert winner["declared"] is False and winner["variant_id"] is None
    assert winner["leader"] == "variant"


def test_settings_rows_are_stored_once_per_experiment(client):
    setup_contract(client)
    client.put(SETTINGS_URL, json={"min_allocation": 0.05})
    client.put(SETTINGS_URL, json={"min_allocation": 0.06})
    client.post("/experiments/ctr_test/archive")
    with database.connection_context():
        assert ExperimentPolicy.select().count() == 1


def test_equal_split_before_the_first_run_leaves_out_archived_arms(client):
    setup_contract(client)
    client.post("/experiments/ctr_test/variants/control/archive")
    body = client.get("/allocation", params={"experiment_id": "ctr_test"}).json()
    assert body["allocations"] == [
        {"variant_id": "variant", "percentage": 100.0, "probability": None}
    ]


def test_concurrent_archives_of_the_last_two_arms_leave_one_active(client):
    import threading

    experiments = [f"race{i}" for i in range(12)]
    for name in experiments:
        client.post("/data", json={**CONTRACT_POST, "experiment_id": name})
    codes = {name: [] for name in experiments}

    def archive(name, arm, barrier):
        barrier.wait()
        url = f"/experiments/{name}/variants/{arm}/archive"
        codes[name].append(client.post(url).status_code)

    for name in experiments:
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=archive, args=(name, arm, barrier))
            for arm in ("control", "variant")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    for name in experiments:
        assert sorted(codes[name]) == [200, 422], name
        variants = client.get(f"/experiments/{name}/settings").json()["variants"]
        assert [v["archived"] for v in variants].count(False) == 1


def test_concurrent_first_settings_writes_of_an_experiment_both_succeed(client):
    # The settings row is made on the first write: two writers at once (two hosts on
    # PostgreSQL) must not both insert it, nor answer 500; the later write wins each key.
    import threading

    experiments = [f"settings{i}" for i in range(8)]
    for name in experiments:
        client.post("/data", json={**CONTRACT_POST, "experiment_id": name})
    codes = {name: [] for name in experiments}

    def put(name, body, barrier):
        barrier.wait()
        codes[name].append(client.put(f"/experiments/{name}/settings", json=body).status_code)

    for name in experiments:
        barrier = threading.Barrier(2)
        bodies = ({"min_allocation": 0.05}, {"min_impressions": 1_000_000_000_000})
        threads = [threading.Thread(target=put, args=(name, b, barrier)) for b in bodies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    for name in experiments:
        assert codes[name] == [200, 200], name
        settings = client.get(f"/experiments/{name}/settings").json()["settings"]
        assert (settings["min_allocation"], settings["min_impressions"]) == (0.05, 10**12)
