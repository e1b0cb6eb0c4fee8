"""Crash during writes: SIGKILL the web server mid-stream of concurrent POSTs, restart it.

Every request that got a 2xx must be in the database with its exact counts; retrying
the rest (and some acknowledged ones, as a client unsure of its last request would)
must leave each (experiment, date, variant) exactly once.
"""

import http.client
import threading
from datetime import date, timedelta

import pytest

from tests.processes import child_env, query, wait_for

PAYLOADS = 600
THREADS = 8
KILL_AFTER_ACKS = 120


def payload(i: int) -> dict:
    day = date(2025, 1, 1) + timedelta(days=i // 20)
    return {
        "experiment_id": f"crash_{i % 20}",
        "date": day.isoformat(),
        "variants": [
            {"variant_id": f"v{k}", "impressions": 1000 + i * 7 + k, "clicks": (i * 3 + k) % 997}
            for k in range(3)
        ],
    }


def expected_rows(i: int) -> set[tuple]:
    p = payload(i)
    return {
        (p["experiment_id"], p["date"], v["variant_id"], v["impressions"], v["clicks"])
        for v in p["variants"]
    }


def stored_rows(target) -> list[tuple]:
    return query(
        target,
        "SELECT e.name, m.date, v.name, m.impressions, m.clicks FROM daily_metric m"
        " JOIN experiment e ON e.id = m.experiment_id JOIN variant v ON v.id = m.variant_id",
    )


def post_all(server, indexes, acked: set, lock: threading.Lock) -> None:
    """Each thread posts its share; a connection error ends its stream (the server died)."""
    for i in indexes:
        try:
            status, _ = server.request("POST", "/data", payload(i), timeout=10)
        except (OSError, http.client.HTTPException):
            return  # no full answer (the kill cut it): not acknowledged, may or may not be stored
        if 200 <= status < 300:
            with lock:
                acked.add(i)


def load_until_killed(server, acked: set) -> None:
    lock = threading.Lock()
    threads = [
        threading.Thread(target=post_all, args=(server, range(t, PAYLOADS, THREADS), acked, lock))
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(acked) >= KILL_AFTER_ACKS, 30, f"{KILL_AFTER_ACKS} acknowledged")
        server.kill()
    finally:
        server.kill()
        for thread in threads:
            thread.join(timeout=15)
    assert not any(t.is_alive() for t in threads)


@pytest.mark.processes
def test_acknowledged_writes_survive_sigkill_and_retries_never_double_count(settings, procs):
    env = child_env(settings)
    acked: set[int] = set()
    load_until_killed(procs.server(env), acked)
    assert KILL_AFTER_ACKS <= len(acked) < PAYLOADS, "the kill must land mid-stream"

    restarted = procs.server(env)
    stored = set(stored_rows(settings))
    for i in acked:
        assert expected_rows(i) <= stored, f"acknowledged request {i} lost or changed"

    retry = sorted(set(range(PAYLOADS)) - acked) + sorted(acked)[:50]
    for i in retry:
        assert restarted.request("POST", "/data", payload(i))[0] == 200
    rows = stored_rows(settings)
    assert len(rows) == len(set(rows)) == PAYLOADS * 3
    assert set(rows) == set().union(*(expected_rows(i) for i in range(PAYLOADS)))
