"""The pages in a real headless Chromium (Debian's `chromium`, driven by Playwright) against
a real uvicorn process on 127.0.0.1: every page loads with no console error and no request
leaving the machine, the charts have a series per arm and a point per day, hovering a
point shows its value, and the list page finds an experiment by search.

Chromium and Playwright missing: a skip on a developer's machine, a failure with CI=true
(.ci/run installs Chromium). With SCREENSHOTS_DIR set (the README's come from
`SCREENSHOTS_DIR=docs/screenshots`), the screenshots are saved there; else in tmp_path.
"""

import dataclasses
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import pytest

from core.db import database, write_transaction
from core.experiments import change_settings, find_experiment
from core.migrations import open_database
from core.schema import Run
from core.settings import load_settings
from tests.demo import live_days
from tests.helpers import load
from tests.processes import Processes, child_env

pytestmark = pytest.mark.processes

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
CHECKOUT = {"control": 0.040, "faster_checkout": 0.043, "one_click": 0.041}
CHART_IDS = ("split", "pbest", "rate", "traffic")


def require(what: str, present: bool) -> None:
    if present:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is missing: .ci/run must install it")
    pytest.skip(f"{what} is not installed")


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright as start
    except ImportError:
        require("the playwright package (requirements-dev.txt)", False)
    return start


def build_site(db_path: Path) -> None:
    """Three experiments: one lived 45 days after 5 of exploration, one whose data stopped,
    one whose own last run failed."""
    base = load_settings({})
    settings = dataclasses.replace(
        base, database=dataclasses.replace(base.database, path=str(db_path))
    )
    open_database(settings.database)
    today = datetime.now(UTC).date()
    first = today - timedelta(days=45)
    with database.connection_context():
        load(*[("checkout", first, arm, 0, 0) for arm in CHECKOUT])
        with write_transaction():
            change_settings(find_experiment("checkout"), {"exploration_days": 5}, settings.policy)
        live_days(settings, "checkout", CHECKOUT, first, 45, daily=500)
        live_days(settings, "pricing_banner", {"old": 0.1, "new": 0.1}, first, 20, daily=800)
        load(("homepage_hero", today - timedelta(days=1), "a", 500, 20))
        load(("homepage_hero", today - timedelta(days=1), "b", 500, 25))
        started = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
        Run.create(
            trigger="manual",
            effective_date=today + timedelta(days=1),
            experiment_filter="homepage_hero",
            status="failed",
            started_at=started,
            finished_at=started + timedelta(seconds=2.5),
            error="OperationalError: disk I/O error",
        )
    database.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """The site on a real uvicorn (after the browser: without one, nothing is built)."""
    db_path = tmp_path_factory.mktemp("site") / "bandit.db"
    build_site(db_path)
    processes = Processes()
    try:
        yield processes.server(child_env(db_path))
    finally:
        processes.kill_all()


@pytest.fixture(scope="module")
def browser():
    start = sync_playwright()
    require(f"Chromium ({CHROMIUM})", Path(CHROMIUM).exists())
    with start() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A tab whose every request is checked: one to a host off this machine is aborted
    and fails the test, and so does any console error or uncaught exception."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    tab = context.new_page()
    problems: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith("data:") or urlparse(url).hostname in LOOPBACK:
            route.continue_()
        else:
            problems.append(f"request off the machine: {url}")
            route.abort()

    tab.route("**/*", guard)
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield tab
    context.close()
    assert problems == []


def url(server, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def screenshot(tab, tmp_path, name: str, height: int) -> None:
    """A PNG of the page's top `height` pixels, small enough for the README."""
    folder = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    clip = {"x": 0, "y": 0, "width": 1100, "height": height}
    tab.screenshot(path=str(folder / f"{name}.png"), full_page=True, clip=clip)


def test_the_list_page_finds_an_experiment_by_search(server, page, tmp_path):
    page.goto(url(server, "/"))
    rows = page.locator("table.experiments tbody tr")
    assert rows.count() == 3
    assert "failed" in rows.nth(1).inner_text()  # homepage_hero, by name
    screenshot(page, tmp_path, "list", height=400)
    page.fill("#search", "PRICING")
    page.press("#search", "Enter")
    page.wait_for_url("**/?q=PRICING")
    assert rows.count() == 1
    assert "pricing_banner" in rows.first.inner_text()
    assert "no data since" in rows.first.inner_text()


def expected_points(series: dict) -> dict[str, dict[str, int]]:
    """Per chart and arm, how many points the page must draw: from the series JSON."""
    counts = {chart: {a["variant_id"]: 0 for a in series["arms"]} for chart in CHART_IDS}
    for day in series["days"]:
        total = sum(a["impressions"] for a in day["arms"])
        for a in day["arms"]:
            name = a["variant_id"]
            counts["split"][name] += day["split"] is not None and a["share"] is not None
            counts["pbest"][name] += a["probability_best"] is not None
            counts["rate"][name] += 1
            counts["traffic"][name] += total > 0
    return counts


# Per chart and series, the points drawn: {chart id: {series name: count}}.
DRAWN = """ids => Object.fromEntries(ids.map(id => [id, Object.fromEntries(
  [...document.querySelectorAll('#' + id + ' g.series')].map(
    g => [g.dataset.series, g.querySelectorAll('circle.pt').length]))]))"""


def test_each_chart_has_a_series_per_arm_and_a_point_per_day(server, page, tmp_path):
    status, series = server.request("GET", "/experiments/checkout/series")
    assert status == 200 and len(series["days"]) == 45
    page.goto(url(server, "/experiments/checkout"))
    drawn = page.evaluate(DRAWN, list(CHART_IDS))
    assert drawn == expected_points(series)
    assert drawn["rate"]["control"] == 45
    assert page.locator("#traffic g.planned").count() == 3
    assert page.locator("#split rect.hatch").count() == 1  # the exploration days
    # Not computed yet on a first visit: the page fetches it once loaded.
    page.wait_for_selector("#outlook[data-ready]", timeout=30_000)
    assert "Over the next 30 days the bandit is expected to gain" in page.inner_text("#outlook")
    screenshot(page, tmp_path, "experiment", height=1560)


def test_hovering_a_point_shows_its_value(server, page):
    _, series = server.request("GET", "/experiments/checkout/series")
    last = series["days"][-1]
    arm = next(a for a in last["arms"] if a["variant_id"] == "one_click")
    page.goto(url(server, "/experiments/checkout"))
    tip = page.locator("#tip")
    assert tip.is_hidden()
    page.locator('#pbest g.series[data-series="one_click"] circle.pt').last.hover()
    assert tip.is_visible()
    value = f"{arm['probability_best'] * 100:.1f}%"
    assert tip.inner_text() == f"one_click · {last['date']}: {value}"
    page.locator('#rate g.series[data-series="one_click"] circle.pt').last.hover()
    assert tip.inner_text().startswith(f"one_click · {last['date']}: {arm['rate'] * 100:.2f}%")


def test_hovering_the_split_shows_the_reason(server, page):
    page.goto(url(server, "/experiments/checkout"))
    page.locator('#split g.series[data-series="one_click"] circle.pt').first.hover()
    assert "Exploration day" in page.locator("#tip").inner_text()


def test_the_runs_page_lists_failures_first(server, page, tmp_path):
    page.goto(url(server, "/runs"))
    first = page.locator("table.runs tbody tr").first
    assert first.get_attribute("class") == "fail"
    assert "disk I/O error" in first.inner_text()
    assert page.locator("table.runs tbody tr").count() == 66  # 45 + 20 nightly runs + 1
    screenshot(page, tmp_path, "runs", height=480)
