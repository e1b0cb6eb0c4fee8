"""The pages in-process: HTML only for a client that prefers it, the same JSON bytes for
every other, ids and searches escaped, the read key applied, the list searched and paged,
runs with failures first. (tests/test_browser.py loads them in a real Chromium.)"""

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.accept import preferred
from api.app import create_app
from api.charts import Frame
from api.experiment_charts import rate_chart, rate_range
from core.db import database
from core.schema import Run
from core.secrets import ApiKeys
from core.series import experiment_series
from tests.helpers import KEY, load

BROWSER = {
    "accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,*/*;q=0.8"
}
OFFERED = ["application/json", "text/html"]


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("", "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        (BROWSER["accept"], "text/html"),
        ("text/html", "text/html"),
        ("text/html, */*", "text/html"),
        ("text/html;q=0.5, application/json", "application/json"),
        ("text/html;q=0", "application/json"),
        ("text/html;q=abc", "application/json"),
        ("image/png", "application/json"),
        ("application/*;q=0.9, text/html", "text/html"),
    ],
)
def test_the_accept_header_picks_the_type(accept, chosen):
    assert preferred(accept, OFFERED) == chosen


def post_day(client, experiment="demo", day=None, a=(1000, 40), b=(1000, 60)):
    day = day or (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    body = {
        "experiment_id": experiment,
        "date": day,
        "variants": [
            {"variant_id": "a", "impressions": a[0], "clicks": a[1]},
            {"variant_id": "b", "impressions": b[0], "clicks": b[1]},
        ],
    }
    assert client.post("/data", json=body).status_code == 200


@pytest.mark.parametrize("path", ["/", "/experiments/demo", "/runs"])
def test_a_browser_gets_a_page(client, path):
    post_day(client)
    client.post("/recompute")
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["vary"] == "Accept"
    assert response.text.startswith("<!doctype html>")


@pytest.mark.parametrize("path", ["/", "/experiments/demo", "/experiments/nope", "/runs"])
def test_every_other_client_gets_the_same_bytes_as_before(client, path):
    post_day(client)
    client.post("/recompute")
    answers = [
        client.get(path, headers=headers)
        for headers in ({"accept": "*/*"}, {}, {"accept": "application/json"})
    ]
    assert len({(r.status_code, r.content) for r in answers}) == 1
    assert all("vary" not in r.headers for r in answers)
    assert answers[0].headers["content-type"] == "application/json"


def test_the_root_stays_a_json_404_for_api_clients(client):
    response = client.get("/", headers={"accept": "*/*"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "Not Found"}


def test_an_unknown_experiment_is_a_404_page_with_the_id_escaped(client):
    response = client.get("/experiments/<img src=x onerror=alert(1)>", headers=BROWSER)
    assert response.status_code == 404
    assert "<img src=x" not in response.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in response.text


def test_a_search_is_escaped_on_the_list_page(client):
    response = client.get("/", params={"q": '"><script>alert(1)</script>'}, headers=BROWSER)
    assert response.status_code == 200
    assert "<script>alert(1)" not in response.text
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in response.text


def test_the_explanations_quoting_ids_are_escaped_on_the_experiment_page(client):
    post_day(client)
    client.put("/experiments/demo/settings", json={"min_impressions": 10**6})
    client.post("/recompute")
    text = client.get("/experiments/demo", headers=BROWSER).text
    assert "Equal split until every arm has 1000000 impressions: &#x27;a&#x27;" in text


@pytest.mark.parametrize("page", ["0", "-1", "abc", "99999999999999999999", ""])
def test_a_bad_page_number_shows_the_first_page(client, page):
    post_day(client)
    response = client.get("/", params={"page": page}, headers=BROWSER)
    assert response.status_code == 200
    assert "Page 1 of 1" in response.text or "Page 1000000 of 1" in response.text


def test_the_list_is_searched_and_paged(client):
    for n in range(55):
        post_day(client, f"exp_{n:02d}")
    post_day(client, "Checkout.Button")
    first = client.get("/", headers=BROWSER).text
    assert first.count('<a href="/experiments/') == 50
    assert "56 experiments" in first and "Page 1 of 2" in first
    second = client.get("/", params={"page": 2}, headers=BROWSER).text
    assert second.count('<a href="/experiments/') == 6
    found = client.get("/", params={"q": "checkout"}, headers=BROWSER).text
    assert found.count('<a href="/experiments/') == 1
    assert "Checkout.Button" in found
    literal = client.get("/", params={"q": "p_0"}, headers=BROWSER).text  # _ is no wildcard
    assert literal.count('<a href="/experiments/') == 10


def test_the_list_shows_status_leader_and_todays_split(client):
    post_day(client)
    client.post("/recompute")
    text = client.get("/", headers=BROWSER).text
    assert "leaning" in text or "winner declared" in text
    # A recompute publishes for tomorrow, and routers are served it from now on.
    assert '<svg class="sbar"' in text and 'data-tip="b: ' in text
    assert "<td>b</td>" in text


def test_the_list_warns_of_a_failed_run_and_missing_days(client):
    today = datetime.now(UTC).date()
    post_day(client, day=(today - timedelta(days=5)).isoformat())
    post_day(client, day=(today - timedelta(days=3)).isoformat())
    with database.connection_context():
        Run.create(trigger="nightly", effective_date=today, status="failed", error="boom")
    text = client.get("/", headers=BROWSER).text
    assert "no data on 1 day(s)" in text
    assert f"no data since {(today - timedelta(days=3)).isoformat()}" in text
    assert "failed" in text


def test_runs_are_listed_failures_first(client):
    today = datetime.now(UTC).date()
    with database.connection_context():
        Run.create(trigger="nightly", effective_date=today, status="failed", error="disk full")
        Run.create(trigger="manual", effective_date=today, status="success")
    text = client.get("/runs", headers=BROWSER).text
    assert text.index("disk full") < text.index("manual")
    assert '<tr class="fail">' in text


def test_pages_need_the_read_key_when_reads_do(settings):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=True)
    app = create_app(dataclasses.replace(settings, auth=auth), ApiKeys([KEY]))
    with TestClient(app) as keyed:
        assert keyed.get("/", headers=BROWSER).status_code == 401
        good = {**BROWSER, "authorization": f"Bearer {KEY}"}
        assert keyed.get("/", headers=good).status_code == 200


def test_the_rate_chart_draws_each_rate_on_its_own_scale(db, settings):
    load(
        ("e1", date(2025, 12, 1), "a", 1000, 40),
        ("e1", date(2025, 12, 1), "b", 1000, 60),
        ("e1", date(2025, 12, 2), "a", 1000, 41),
        ("e1", date(2025, 12, 2), "b", 1000, 59),
    )
    series = experiment_series("e1", settings)
    svg = rate_chart(series, ["a", "b"])
    frame = Frame(2, *rate_range(series))
    for name in "ab":
        group = re.search(f'data-series="{name}">(.*?)</g>', svg).group(1)
        drawn = [
            float(y) for y in re.findall(r'circle class="pt" cx="[\d.]+" cy="([\d.]+)"', group)
        ]
        rates = [next(a.rate for a in d.arms if a.variant_id == name) for d in series.days]
        assert drawn == [frame.y(r) for r in rates]
        assert frame.top < min(drawn) and max(drawn) < frame.height - frame.bottom
