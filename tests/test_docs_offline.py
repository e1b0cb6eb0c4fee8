"""/docs and /redoc in a real headless Chromium: the operations render, and the pages ask
nothing of any host but this one (Swagger UI and ReDoc are served by the service)."""

import os
import shutil
from urllib.parse import urlsplit

import pytest

from tests.processes import child_env

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LOOPBACK = {"127.0.0.1", "localhost"}

pytestmark = pytest.mark.processes


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM) or not _has_playwright():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} and playwright are needed in CI (.ci/run installs them)")
        pytest.skip(f"{CHROMIUM} or playwright is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def _has_playwright() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def offsite_page(browser):
    """A page whose every request to a host off this machine is recorded and refused."""
    page = browser.new_page()
    page.offsite = []

    def only_loopback(route):
        if urlsplit(route.request.url).hostname in LOOPBACK:
            route.continue_()
        else:
            page.offsite.append(route.request.url)
            route.abort()

    page.route("**/*", only_loopback)
    return page


@pytest.fixture
def server(procs, tmp_path):
    return procs.server(child_env(tmp_path / "bandit.db"))


def test_swagger_ui_renders_the_operations_from_this_server_alone(server, offsite_page):
    offsite_page.goto(f"http://127.0.0.1:{server.port}/docs")
    offsite_page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = offsite_page.locator(".opblock-summary-path").all_inner_texts()
    assert {"/data", "/allocation", "/recompute", "/runs"} <= set(paths)
    assert offsite_page.offsite == []


def test_redoc_renders_the_operations_from_this_server_alone(server, offsite_page):
    offsite_page.goto(f"http://127.0.0.1:{server.port}/redoc")
    offsite_page.wait_for_selector("[data-section-id^='tag/']", timeout=20_000)
    headings = offsite_page.locator("h2").all_inner_texts()
    assert {"Post Data", "Get Allocation", "Recompute"} <= set(headings)
    offsite_page.wait_for_load_state("networkidle")
    assert offsite_page.offsite == []
