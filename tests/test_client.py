"""The client module against a real `python -m api`: it assigns 100,000 units exactly as
GET /assign does across experiments and days, keeps serving through a server restart and
errors, and falls back as documented for an unknown experiment."""

import dataclasses
import re
import signal
import socket
from datetime import date, timedelta

import pytest

from bandit_client import Client
from core.db import database
from core.migrations import open_database
from tests.helpers import NOW, load, run_at
from tests.processes import HOST, child_env, wait_for

pytestmark = pytest.mark.processes
EXPERIMENTS = {"sticky_a": "sticky", "sticky_b": "sticky", "daily_c": "daily"}


def publish_day(settings, day: int) -> None:
    """A day of counts for each experiment, then the nightly run of that day."""
    when = date(2025, 12, 22) + timedelta(days=day)
    open_database(settings.database)
    with database.connection_context():
        for n, name in enumerate(EXPERIMENTS):
            clicks = [(10 + 7 * n + 13 * day * k) % 90 + 5 for k in range(3)]
            load(*[(name, when, arm, 1000, c) for arm, c in zip("xyz", clicks, strict=True)])
        for name, mode in EXPERIMENTS.items():
            policy = dataclasses.replace(settings.policy, assignment=mode)
            mode_settings = dataclasses.replace(settings, policy=policy)
            run_at(NOW + timedelta(days=day), mode_settings, experiment_id=name)
    database.close()


def assigned_by_server(port: int, pairs: list[tuple[str, str]]) -> list[str]:
    """GET /assign for every pair, pipelined on one connection a thousand at a time."""
    answers = []
    with socket.create_connection((HOST, port), timeout=30) as sock:
        for start in range(0, len(pairs), 1000):
            batch = pairs[start : start + 1000]
            requests = (f"GET /assign?experiment_id={e}&unit_id={u}" for e, u in batch)
            sock.sendall(b"".join(f"{r} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for r in requests))
            answers += read_answers(sock, len(batch))
    return answers


def read_answers(sock, count: int) -> list[str]:
    data, answers = b"", []
    while len(answers) < count:
        data += sock.recv(1 << 20)
        while (end := data.find(b"\r\n\r\n")) >= 0:
            length = int(re.search(rb"content-length: (\d+)", data[:end]).group(1))
            if len(data) < end + 4 + length:
                break
            body, data = data[end + 4 : end + 4 + length], data[end + 4 + length :]
            answers.append(re.search(rb'"variant_id":"([^"]+)"', body).group(1).decode())
    return answers


def test_the_client_and_assign_agree_on_100000_units_across_experiments_and_days(
    tmp_path, procs, settings
):
    publish_day(settings, 0)
    web = procs.web(child_env(settings))
    client = Client(f"http://{HOST}:{web.port}")
    pairs = [(name, f"unit-{n}") for n in range(100_000 // 2 // 3) for name in EXPERIMENTS]
    for day in (0, 1):
        if day:
            publish_day(settings, day)  # three runs: wait for the last one (daily_c's)

            def on_the_new_day():
                client.refresh()
                return client.assigners["daily_c"].seed == "2025-12-24"

            wait_for(on_the_new_day, 10, "the new day's splits")
        else:
            assert client.refresh()
        local = [client.variant(e, u) for e, u in pairs]
        assert assigned_by_server(web.port, pairs) == local
        assert len(set(local)) == 3


def test_the_client_keeps_serving_through_a_server_restart(tmp_path, procs, settings):
    publish_day(settings, 0)
    web = procs.web(child_env(settings))
    client = Client(f"http://{HOST}:{web.port}", timeout_s=2)
    assert client.refresh()
    before = [client.variant("sticky_a", f"u{n}") for n in range(1000)]
    web.signal(signal.SIGKILL)
    web.wait()
    assert client.refresh() is False
    assert client.last_error is not None and "Connection" in client.last_error
    assert [client.variant("sticky_a", f"u{n}") for n in range(1000)] == before
    again = procs.web(child_env(settings), port=web.port)
    assert again.port == web.port
    assert client.refresh() is False  # 304: the same split has the same ETag after a restart
    assert client.last_error is None
    assert [client.variant("sticky_a", f"u{n}") for n in range(1000)] == before


def test_a_client_with_a_cache_file_starts_with_the_last_good_payload(tmp_path, procs, settings):
    publish_day(settings, 0)
    web = procs.web(child_env(settings))
    path = tmp_path / "splits.json"
    first = Client(f"http://{HOST}:{web.port}", cache_path=str(path))
    assert first.refresh()
    web.signal(signal.SIGKILL)
    web.wait()
    second = Client(f"http://{HOST}:{web.port}", cache_path=str(path), timeout_s=1)
    assert second.refresh() is False
    assert second.variant("sticky_b", "u1") == first.variant("sticky_b", "u1")


def test_an_unknown_experiment_gets_the_documented_default():
    client = Client("http://127.0.0.1:9")  # nothing listens: no payload at all
    assert client.refresh() is False
    assert client.variant("nope", "u1") is None
    assert client.variant("nope", "u1", default="control") == "control"
    equal = [client.variant("nope", f"u{n}", default=["a", "b"]) for n in range(2000)]
    assert 900 < equal.count("a") < 1100
