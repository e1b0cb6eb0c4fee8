"""Freshness with real processes: a publish by another process is served within a second."""

import time
from datetime import UTC, datetime

import pytest

from tests.processes import child_env, run_once

pytestmark = pytest.mark.processes


@pytest.fixture
def env(settings):
    return child_env(settings)


def test_publish_by_run_once_in_another_process_is_served_within_a_second(procs, env):
    web = procs.server(env)
    today = datetime.now(UTC).date().isoformat()
    post = {
        "experiment_id": "fresh",
        "date": today,
        "variants": [
            {"variant_id": "a", "impressions": 1000, "clicks": 10},
            {"variant_id": "b", "impressions": 1000, "clicks": 90},
        ],
    }
    assert web.request("POST", "/data", post)[0] == 200
    url = "/allocation?experiment_id=fresh"
    assert web.request("GET", url)[1]["status"] == "not_computed"
    done = run_once(procs, env)
    assert done.process.returncode == 0, done.output
    # The run committed before run-once exited, so the second counts from no later than it.
    published = time.monotonic()
    while (body := web.request("GET", url)[1])["status"] != "computed":
        assert time.monotonic() - published < 1.0, "publish not served within 1 s"
        time.sleep(0.01)
    assert body["allocations"][1]["percentage"] > 99
