"""Logs an operator can use: request ids, JSON lines, and an audit line per change."""

import http.client
import json
import logging
import signal
from contextlib import closing

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.logs import REQUEST_ID, JsonLines, TextLines, log_config
from core.secrets import parse_api_keys
from tests.helpers import CONTRACT_POST, KEY, NOW, load_contract, run_at
from tests.processes import HOST, child_env

OPS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def named(settings):
    """Keys named the way an operator gives them: `name=key` pairs, and a plain key."""
    keys = parse_api_keys(f"ops-team={KEY},plain-key-0123456789")
    with TestClient(create_app(settings, keys)) as client:
        client.post("/data", json=CONTRACT_POST, headers=OPS)
        yield client


def audit_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "bandit.audit"]


def test_a_sane_request_id_is_returned_as_sent(client):
    response = client.get("/healthz", headers={"X-Request-ID": "edge-42.a/b"})
    assert response.headers["x-request-id"] == "edge-42.a/b"


@pytest.mark.parametrize("sent", [None, "has space", "x" * 129, "semi;colon"])
def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(client, sent):
    headers = {"X-Request-ID": sent} if sent else {}
    returned = client.get("/healthz", headers=headers).headers["x-request-id"]
    assert returned != sent and len(returned) == 32 and int(returned, 16) >= 0


def test_a_refused_request_carries_a_request_id_too(named):
    response = named.post("/data", json=CONTRACT_POST)
    assert response.status_code == 401 and len(response.headers["x-request-id"]) == 32


def test_a_settings_change_is_audited_from_what_to_what_by_key_name(named, caplog):
    caplog.set_level(logging.INFO, logger="bandit.audit")
    body = {"min_allocation": 0.05}
    named.put("/experiments/ctr_test/settings", json=body, headers=OPS)
    (line,) = audit_lines(caplog)
    assert line.getMessage() == "settings ctr_test by ops-team: min_allocation: 0.0 -> 0.05"
    assert line.api_key == "ops-team"
    assert line.changes == {"min_allocation": {"from": 0.0, "to": 0.05}}


def test_a_plain_key_is_named_by_its_position(named, caplog):
    caplog.set_level(logging.INFO, logger="bandit.audit")
    plain = {"Authorization": "Bearer plain-key-0123456789"}
    named.post("/experiments/ctr_test/archive", headers=plain)
    named.post("/experiments/ctr_test/variants/variant/archive", headers=plain)
    messages = [line.getMessage() for line in audit_lines(caplog)]
    assert messages == [
        "archive ctr_test by key-2: archived: false -> true",
        "archive ctr_test/variant by key-2: archived: false -> true",
    ]
    assert "plain-key-0123456789" not in caplog.text


def test_a_recompute_is_audited_with_its_run(named, caplog):
    caplog.set_level(logging.INFO, logger="bandit.audit")
    run_id = named.post("/recompute", headers=OPS).json()["run_id"]
    (line,) = audit_lines(caplog)
    said = 'recompute all experiments by ops-team: status: "running" -> "success"'
    assert line.getMessage() == said
    assert (line.run_id, line.experiments_processed, line.api_key) == (run_id, 1, "ops-team")


def test_a_refused_change_is_not_audited(named, caplog):
    caplog.set_level(logging.INFO, logger="bandit.audit")
    named.put("/experiments/ctr_test/settings", json={"min_allocation": 0.7}, headers=OPS)
    assert audit_lines(caplog) == []


def test_json_lines_carry_time_level_logger_message_request_id_and_fields():
    record = logging.LogRecord("bandit.job", logging.INFO, "job.py", 1, "run %s done", (7,), None)
    record.run_id = 7
    token = REQUEST_ID.set("req-1")
    try:
        line = json.loads(JsonLines().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line.keys() == {"time", "level", "logger", "message", "request_id", "run_id"}
    assert (line["level"], line["logger"], line["message"]) == ("INFO", "bandit.job", "run 7 done")
    assert (line["request_id"], line["run_id"]) == ("req-1", 7)


@pytest.mark.processes
def test_a_real_server_logs_json_lines_with_the_request_id(procs, tmp_path, settings):
    config = tmp_path / "logging.json"
    config.write_text(json.dumps(log_config("json")))
    args = ["-m", "uvicorn", "--factory", "api.app:create_app", "--log-config", str(config)]
    server = procs.start([*args, "--host", HOST, "--port", "0"], child_env(settings))
    port = int(server.wait_for_line(r"running on http://127\.0\.0\.1:(\d+)").group(1))
    status = get(port, "/healthz", {"X-Request-ID": "trace-9"})
    server.wait_for_line(r"trace-9")
    server.signal(signal.SIGTERM)
    server.wait()
    lines = [json.loads(line) for line in server.lines if line.strip()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert status == 200 and access[0]["request_id"] == "trace-9"
    assert {"time", "level", "logger", "message"} <= lines[0].keys()


def get(port: int, path: str, headers: dict) -> int:
    with closing(http.client.HTTPConnection(HOST, port, timeout=10)) as conn:
        conn.request("GET", path, headers=headers)
        return conn.getresponse().status


def test_text_lines_add_only_the_request_id_and_real_fields():
    record = logging.LogRecord("uvicorn.error", logging.INFO, "x.py", 1, "started", (), None)
    record.color_message = "\x1b[1mstarted\x1b[0m"  # what uvicorn adds
    line = TextLines("%(asctime)s %(message)s").format(record)
    assert line.endswith(" started") and "[" not in line


def test_a_run_logs_its_id_as_a_field(db, settings, caplog):
    load_contract()
    caplog.set_level(logging.INFO, logger="bandit.job")
    summary = run_at(NOW, settings)
    published = [r for r in caplog.records if "published" in r.getMessage()]
    assert published and published[0].run_id == summary.run_id
    assert json.loads(JsonLines().format(published[0]))["run_id"] == summary.run_id


def test_made_request_ids_are_32_hex_digits_unique_also_across_a_fork():
    import os
    import re

    from api.logs import request_id

    made = [request_id(None) for _ in range(1000)]
    assert len(set(made)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, request_id(None).encode())
        os._exit(0)
    os.waitpid(child, 0)
    in_child = os.read(read, 64).decode()
    os.close(read)
    os.close(write)
    assert in_child[:16] != made[0][:16]
    assert request_id("from-the-proxy.1") == "from-the-proxy.1"
