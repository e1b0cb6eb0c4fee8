"""core.series against counts worked out by hand: the days, the running and counted totals
(plain, windowed, discounted), arms that join or are archived mid-way, and the split
served each day; and GET /experiments/{id}/series and /metrics on top of it."""

import dataclasses
from datetime import date

import pytest
from freezegun import freeze_time

from core.beta import credible_interval, exact_prob_best
from core.counts import aggregate_counts
from core.experiments import find_experiment, find_variant, set_variant_archived
from core.series import experiment_series
from core.split_history import split_history
from core.splits import allocation_series, publish_times
from tests.helpers import load, run_at, utc

D1, D2, D3, D4 = (date(2025, 12, d) for d in (1, 2, 3, 4))


def with_policy(settings, **changes):
    return dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, **changes))


def three_days() -> None:
    """Two arms over three days, the third with nothing for b."""
    load(
        ("e1", D1, "a", 100, 10),
        ("e1", D1, "b", 200, 30),
        ("e1", D2, "a", 300, 20),
        ("e1", D2, "b", 100, 5),
        ("e1", D3, "a", 50, 1),
    )


def arm(day, name: str):
    return next(a for a in day.arms if a.variant_id == name)


def test_each_day_has_its_posted_counts_and_running_totals(db, settings):
    three_days()
    series = experiment_series("e1", settings)
    assert [d.date for d in series.days] == [D1, D2, D3]
    assert [(arm(d, "b").impressions, arm(d, "b").clicks) for d in series.days] == [
        (200, 30),
        (100, 5),
        (0, 0),
    ]
    assert [
        (arm(d, "a").cumulative_impressions, arm(d, "a").cumulative_clicks) for d in series.days
    ] == [
        (100, 10),
        (400, 30),
        (450, 31),
    ]
    last = arm(series.days[-1], "a")
    assert (last.counted_impressions, last.counted_clicks) == (450.0, 31.0)


def test_rate_and_interval_are_the_posterior_of_the_days_totals(db, settings):
    three_days()
    b = arm(experiment_series("e1", settings).days[1], "b")
    # Beta(1 + 35, 1 + 300 - 35) with the default prior.
    assert b.rate == pytest.approx(36 / 302)
    assert b.interval_95 == pytest.approx(credible_interval(36, 266))


def test_probability_best_is_the_days_posterior_and_sums_to_one(db, settings):
    three_days()
    day = experiment_series("e1", settings).days[0]
    expected = exact_prob_best([11.0, 31.0], [91.0, 171.0])
    assert [a.probability_best for a in day.arms] == pytest.approx(expected, abs=2e-3)
    assert sum(a.probability_best for a in day.arms) == pytest.approx(1.0)


def test_a_window_counts_only_the_last_days_as_of_each_day(db, settings):
    three_days()
    days = experiment_series("e1", with_policy(settings, window_days=2)).days
    a = [(arm(d, "a").counted_impressions, arm(d, "a").counted_clicks) for d in days]
    assert a == [(100, 10), (400, 30), (350, 21)]
    assert arm(days[2], "a").cumulative_impressions == 450
    assert arm(days[2], "a").rate == pytest.approx(22 / 352)


def test_a_discount_weighs_each_day_by_its_age_on_that_day(db, settings):
    three_days()
    days = experiment_series("e1", with_policy(settings, discount=0.5)).days
    assert arm(days[1], "a").counted_impressions == pytest.approx(300 + 0.5 * 100)
    assert arm(days[2], "a").counted_impressions == pytest.approx(50 + 0.5 * 300 + 0.25 * 100)
    assert arm(days[2], "b").counted_clicks == pytest.approx(0 + 0.5 * 5 + 0.25 * 30)


@pytest.mark.parametrize("policy", [{"window_days": 2}, {"discount": 0.7}, {}])
def test_the_last_day_counts_what_the_jobs_aggregation_counts(db, settings, policy):
    three_days()
    changed = with_policy(settings, **policy)
    last = experiment_series("e1", changed).days[-1]
    [totals] = aggregate_counts("e1", as_of=D3, defaults=changed.policy)
    ours = [v for a in last.arms for v in (a.counted_impressions, a.counted_clicks)]
    assert ours == pytest.approx(
        [v for t in totals.arms for v in (t.counted_impressions, t.counted_clicks)]
    )


def test_an_arm_that_joins_later_appears_from_its_first_day(db, settings):
    three_days()
    load(("e1", D2, "c", 80, 8), ("e1", D3, "c", 20, 1))
    series = experiment_series("e1", settings)
    assert [[a.variant_id for a in d.arms] for d in series.days] == [
        ["a", "b"],
        ["a", "b", "c"],
        ["a", "b", "c"],
    ]
    c = arm(series.days[2], "c")
    assert (c.cumulative_impressions, c.cumulative_clicks) == (100, 9)
    assert series.arms[2].joined == D2
    assert sum(a.probability_best for a in series.days[1].arms) == pytest.approx(1.0)


def test_an_archived_arm_leaves_p_best_from_the_day_it_was_archived(db, settings):
    three_days()
    load(("e1", D1, "c", 100, 50))
    experiment = find_experiment("e1")
    with freeze_time("2025-12-02 09:00:00"):
        set_variant_archived(find_variant(experiment, "c"), True)
    series = experiment_series("e1", settings)
    assert series.arms[2].archived_from == D2
    c_by_day = [arm(d, "c") for d in series.days]
    assert [(c.active, c.probability_best is None) for c in c_by_day] == [
        (True, False),
        (False, True),
        (False, True),
    ]
    assert c_by_day[0].probability_best > 0.99  # 50% against 10% and 15%
    assert sum(arm(series.days[1], v).probability_best for v in "ab") == pytest.approx(1.0)
    assert c_by_day[2].cumulative_impressions == 100  # its data stays


def test_each_day_carries_the_split_served_that_day(db, settings):
    three_days()
    load(("e1", D4, "a", 10, 1), ("e1", D4, "b", 10, 1))
    run_at(utc(2025, 12, 2, 23, 50), settings)  # publishes for D3 at the end of D2
    series = experiment_series("e1", settings)
    by_date = {d.date: d for d in series.days}
    assert by_date[D1].split is None
    during, whole = by_date[D2].split, by_date[D3].split
    assert (during.date, during.from_start, during.whole_day) == (D3, False, False)
    assert (whole.date, whole.from_start, whole.whole_day) == (D3, True, True)
    assert whole.reason == "thompson" and whole.trigger == "nightly"
    shares = [arm(by_date[D3], v).share for v in "ab"]
    assert sum(shares) == pytest.approx(1.0)
    published = run_at_allocations(db)
    assert shares == pytest.approx([p / 100 for p in published])


def run_at_allocations(db) -> list[float]:
    return [row[0] for row in db.execute_sql("SELECT percentage FROM allocation ORDER BY id")]


def test_the_series_follows_every_change_it_depends_on(db, settings):
    three_days()
    first = experiment_series("e1", settings)
    assert experiment_series("e1", settings) is first  # nothing changed: the cached one
    load(("e1", D3, "b", 40, 4))
    posted = experiment_series("e1", settings)
    assert arm(posted.days[-1], "b").impressions == 40
    load(("e1", D3, "b", 40, 5))  # a repost of the same day
    assert arm(experiment_series("e1", settings).days[-1], "b").clicks == 5
    run_at(utc(2025, 12, 3, 23, 50), settings)
    assert experiment_series("e1", settings).history
    with freeze_time("2025-12-03 09:00:00"):
        set_variant_archived(find_variant(find_experiment("e1"), "b"), True)
    assert arm(experiment_series("e1", settings).days[-1], "b").active is False
    windowed = experiment_series("e1", with_policy(settings, window_days=1))
    assert arm(windowed.days[-1], "a").counted_impressions == 50


def test_an_experiment_with_no_data_has_no_days(db, settings):
    load(("e1", D1, "a", 0, 0))
    db.execute_sql("DELETE FROM daily_metric")
    series = experiment_series("e1", settings)
    assert (series.arms, series.days) == ([], [])


# --- the endpoints -----------------------------------------------------------------


POST = {
    "experiment_id": "e1",
    "date": "2025-12-01",
    "variants": [
        {"variant_id": "a", "impressions": 100, "clicks": 10},
        {"variant_id": "b", "impressions": 200, "clicks": 30},
    ],
}


def test_series_endpoint_returns_every_day_and_arm(client):
    client.post("/data", json=POST)
    client.post("/data", json={**POST, "date": "2025-12-03"})
    body = client.get("/experiments/e1/series").json()
    assert [d["date"] for d in body["days"]] == ["2025-12-01", "2025-12-02", "2025-12-03"]
    middle = body["days"][1]
    assert middle["split"] is None
    assert [(a["impressions"], a["cumulative_impressions"]) for a in middle["arms"]] == [
        (0, 100),
        (0, 200),
    ]
    assert body["arms"][0] == {"variant_id": "a", "joined": "2025-12-01", "archived_from": None}


def test_metrics_endpoint_returns_the_posted_rows(client):
    client.post("/data", json=POST)
    rows = client.get("/experiments/e1/metrics").json()
    assert [(r["date"], r["variant_id"], r["impressions"], r["clicks"]) for r in rows] == [
        ("2025-12-01", "a", 100, 10),
        ("2025-12-01", "b", 200, 30),
    ]
    assert rows[0]["updated_at"].endswith("Z")


def test_metrics_as_csv_when_asked(client):
    client.post("/data", json=POST)
    json_rows = client.get("/experiments/e1/metrics").json()
    response = client.get("/experiments/e1/metrics", headers={"accept": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0] == "date,variant_id,impressions,clicks,updated_at"
    assert lines[1:] == [
        f"{r['date']},{r['variant_id']},{r['impressions']},{r['clicks']},{r['updated_at']}"
        for r in json_rows
    ]


@pytest.mark.parametrize("accept", ["*/*", "application/json", "text/csv;q=0.5, */*"])
def test_metrics_stay_json_unless_csv_is_preferred(client, accept):
    client.post("/data", json=POST)
    response = client.get("/experiments/e1/metrics", headers={"accept": accept})
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("path", ["/experiments/nope/series", "/experiments/nope/metrics"])
def test_unknown_experiment_is_404(client, path):
    response = client.get(path, headers={"accept": "text/csv"})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_the_split_history_is_the_allocations_history_without_probabilities(db, settings):
    three_days()
    run_at(utc(2025, 12, 2, 23, 50), settings)
    run_at(utc(2025, 12, 3, 10, 0), settings, "manual")
    experiment = find_experiment("e1")
    expected = allocation_series(experiment)
    for item in expected:
        item["allocations"] = [
            {k: v for k, v in a.items() if k != "probability"} for a in item["allocations"]
        ]
    assert split_history(experiment, publish_times(experiment)) == expected
    assert len(expected) == 2
