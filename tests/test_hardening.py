"""Inputs an operator's bad day brings: each is refused with a message, nothing starts or
changes by accident."""

import json
import socket
import subprocess
import sys

import pytest

from core.settings import SettingsError, load_settings
from tests.helpers import CONTRACT_POST
from tests.processes import HOST, ROOT, child_env


def run_module(tmp_path, *args, timeout=20, **env):
    """The command's (exit status, stdout + stderr); a command still running after
    `timeout` seconds started something it should not have, and is killed."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", *args],
            cwd=ROOT,
            env=child_env(tmp_path / "bandit.db", **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"python -m {' '.join(args)} was still running after {timeout}s")
    return done.returncode, done.stdout + done.stderr


@pytest.mark.processes
def test_python_m_api_help_prints_usage_and_starts_no_server(tmp_path):
    status, output = run_module(tmp_path, "api", "--help")
    assert status == 0
    assert "usage: python -m api" in output
    assert not (tmp_path / "bandit.db").exists()


@pytest.mark.processes
@pytest.mark.parametrize("raw", [",", " "])
def test_python_m_api_refuses_a_key_variable_that_holds_no_key(tmp_path, raw):
    status, output = run_module(tmp_path, "api", BANDIT_AUTH_API_KEYS=raw)
    assert status == 2
    assert "BANDIT_AUTH_API_KEYS is set but holds no key" in output


@pytest.mark.processes
def test_scheduler_experiment_option_without_run_once_starts_no_clock(tmp_path):
    status, output = run_module(tmp_path, "scheduler", "--experiment", "ctr_test")
    assert status == 2
    assert "--experiment is an option of run-once" in output


def test_a_trailing_slash_is_not_redirected_to_the_host_header(client):
    response = client.get(
        "/allocation/?experiment_id=x", headers={"host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert "location" not in response.headers


@pytest.mark.parametrize(
    ("body", "problem"),
    [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("1" * 5000, "a number is too long")],
)
def test_a_body_json_cannot_decode_is_a_422_naming_the_body(client, body, problem):
    response = client.post("/data", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()
    assert error["error"] == "invalid_request"
    assert error["message"] == f"body: not valid JSON ({problem})"
    assert error["errors"] == [{"field": "body", "message": error["message"]}]


def test_many_unknown_fields_get_a_bounded_error_body(client):
    payload = {**CONTRACT_POST, **{f"f{i}": 1 for i in range(80_000)}}
    response = client.post("/data", json=payload)
    assert response.status_code == 422
    assert len(response.content) < 10_000
    error = response.json()
    assert error["message"].endswith("; and 79995 more problem(s)")
    assert len(error["errors"]) == 20
    assert client.get("/allocation", params={"experiment_id": "ctr_test"}).status_code == 404


@pytest.mark.processes
def test_both_length_and_chunked_framing_is_refused_and_the_connection_closed(tmp_path, procs):
    server = procs.server(child_env(tmp_path / "bandit.db"))
    body = json.dumps(CONTRACT_POST).encode()
    smuggled = (
        b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n\r\n"
        + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(smuggled)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    # httptools (uvicorn[standard]) refuses the framing before the app sees it; on h11 the
    # app's own middleware does, naming both headers. Either way the connection is closed.
    assert b"connection: close" in answer.lower()
    assert (
        b"Invalid HTTP request received." in answer
        or b"both Content-Length and Transfer-Encoding" in answer
    )
    assert answer.count(b"HTTP/1.1 ") == 1  # the pipelined GET was never answered
    assert server.request("GET", "/allocation?experiment_id=ctr_test")[0] == 404


@pytest.mark.processes
def test_a_sqlite_database_path_in_a_missing_directory_is_refused_naming_the_setting(tmp_path):
    missing = tmp_path / "var" / "lib" / "bandit" / "bandit.db"
    status, output = run_module(tmp_path, "api", BANDIT_DATABASE_PATH=missing)
    assert status == 2
    assert (
        f"database.path: expected a file path in a directory that exists, got '{missing}'" in output
    )
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("zone", "moment"),
    [("Europe/Berlin", "02:30"), ("America/New_York", "02:15"), ("America/New_York", "01:30")],
)
def test_a_schedule_time_a_daylight_saving_change_skips_or_repeats_is_refused(zone, moment):
    env = {"BANDIT_SCHEDULE_TIMEZONE": zone, "BANDIT_SCHEDULE_TIME": moment}
    with pytest.raises(SettingsError, match=f"schedule.time {moment} is skipped or repeated"):
        load_settings(env)


@pytest.mark.parametrize(("zone", "moment"), [("Europe/Berlin", "23:50"), ("UTC", "02:30")])
def test_a_schedule_time_clear_of_daylight_saving_changes_is_accepted(zone, moment):
    settings = load_settings({"BANDIT_SCHEDULE_TIMEZONE": zone, "BANDIT_SCHEDULE_TIME": moment})
    assert settings.schedule.time == moment
