"""Freshness with real processes: a publish by another process is served within a second."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json"} if data else {}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def env(tmp_path):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BANDIT_")}
    return {**clean, "BANDIT_DATABASE_PATH": str(tmp_path / "bandit.db"), "PYTHONPATH": str(ROOT)}


@pytest.fixture
def web(env):
    """A real uvicorn web process on a free port; yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.app:create_app",
        "--port",
        str(port),
    ]
    process = subprocess.Popen([*command, "--log-level", "warning"], env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            get_json(f"{base}/healthz")
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "web did not start"
            time.sleep(0.05)
    yield base
    process.terminate()
    process.wait(timeout=10)


def test_publish_by_run_once_in_another_process_is_served_within_a_second(web, env):
    today = datetime.now(UTC).date().isoformat()
    post = {
        "experiment_id": "fresh",
        "date": today,
        "variants": [
            {"variant_id": "a", "impressions": 1000, "clicks": 10},
            {"variant_id": "b", "impressions": 1000, "clicks": 90},
        ],
    }
    get_json(f"{web}/data", post)
    url = f"{web}/allocation?experiment_id=fresh"
    assert get_json(url)["status"] == "not_computed"
    command = [sys.executable, "-m", "scheduler", "run-once"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    # The run committed before run-once exited, so the second counts from no later than it.
    published = time.monotonic()
    while (body := get_json(url))["status"] != "computed":
        assert time.monotonic() - published < 1.0, "publish not served within 1 s"
        time.sleep(0.01)
    assert body["allocations"][1]["percentage"] > 99
