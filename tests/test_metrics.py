"""GET /metrics: Prometheus text that counts what the service did, in one process or many."""

import dataclasses
import http.client
import signal
from contextlib import closing

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from api import metrics
from api.app import create_app
from core.secrets import ApiKeys
from ingest.__main__ import main as bulk_load
from tests.helpers import CONTRACT_POST, KEY, NOW, run_at
from tests.processes import HOST, child_env, wait_for


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(client) -> dict[tuple, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def requests(found: dict, route: str, method: str, status: str) -> float:
    labels = (("method", method), ("route", route), ("status", status))
    return found.get(("bandit_http_requests_total", labels), 0)


def test_requests_are_counted_by_route_template_method_and_status(client):
    before = scrape(client)
    client.post("/data", json=CONTRACT_POST)
    client.get("/experiments/ctr_test")
    client.get("/experiments/nope")
    client.get("/no/such/path")
    after = scrape(client)
    for route, method, status in [
        ("/data", "POST", "200"),
        ("/experiments/{experiment_id}", "GET", "200"),
        ("/experiments/{experiment_id}", "GET", "404"),
        ("unmatched", "GET", "404"),
    ]:
        assert requests(after, route, method, status) - requests(before, route, method, status) == 1
    post_data = (("method", "POST"), ("route", "/data"))
    latency = ("bandit_http_request_duration_seconds_count", post_data)
    assert after[latency] - before.get(latency, 0) == 1


def test_fast_path_reads_are_counted(client):
    client.post("/data", json=CONTRACT_POST)
    before = requests(scrape(client), "/allocation", "GET", "200")
    for _ in range(3):
        client.get("/allocation?experiment_id=ctr_test")
    assert requests(scrape(client), "/allocation", "GET", "200") - before == 3


def test_a_refused_write_is_counted_under_its_route(settings):
    with TestClient(create_app(settings, ApiKeys([KEY]))) as client:
        before = requests(scrape(client), "/data", "POST", "401")
        assert client.post("/data", json=CONTRACT_POST).status_code == 401
        assert requests(scrape(client), "/data", "POST", "401") - before == 1


def test_rows_posted_and_bulk_loaded_are_counted(client, database_env, tmp_path):
    before = scrape(client)
    client.post("/data", json=CONTRACT_POST)
    path = tmp_path / "rows.csv"
    path.write_text(
        "experiment_id,date,variant_id,impressions,clicks\n"
        "bulk,2025-12-20,a,10,1\nbulk,2025-12-20,b,10,2\nbulk,2025-12-21,a,10,3\n"
    )
    assert bulk_load([str(path)]) == 0
    after = scrape(client)
    posted = ("bandit_post_rows_total", ())
    assert after[posted] - before.get(posted, 0) == 2
    assert after[("bandit_bulk_rows_total", ())] == 3


def test_runs_their_phases_and_the_last_scheduled_success_are_exported(client, settings):
    client.post("/data", json=CONTRACT_POST)
    run_at(NOW, settings)  # as the clock process would: only the database knows of it
    found = scrape(client)
    assert found[("bandit_runs_total", (("status", "success"), ("trigger", "nightly")))] == 1
    assert found[("bandit_last_scheduled_success_timestamp_seconds", ())] == NOW.timestamp()
    assert found[("bandit_last_run_duration_seconds", ())] >= 0
    phases = {dict(k[1])["phase"] for k in found if k[0] == "bandit_last_run_phase_seconds"}
    assert phases == {"compute", "staging", "publish_lock"}


def test_the_cache_is_described(client):
    client.post("/data", json=CONTRACT_POST)
    found = scrape(client)
    assert found[("bandit_experiments_served", ())] == 1
    assert 0 <= found[("bandit_cache_age_seconds", ())] < 60
    assert found[("bandit_database_up", ())] == 1


def test_metrics_off_serves_no_metrics_and_counts_no_fast_reads(settings):
    on = create_app(settings)
    with TestClient(on) as client:
        client.post("/data", json=CONTRACT_POST)
        before = requests(scrape(client), "/allocation", "GET", "200")
    off = dataclasses.replace(settings, server=dataclasses.replace(settings.server, metrics=False))
    with TestClient(create_app(off)) as client:
        client.get("/allocation?experiment_id=ctr_test")
        assert client.get("/metrics").status_code == 404
    with TestClient(create_app(settings)) as client:
        assert requests(scrape(client), "/allocation", "GET", "200") == before


def get(port: int, path: str) -> bytes:
    with closing(http.client.HTTPConnection(HOST, port, timeout=10)) as conn:
        conn.request("GET", path)
        return conn.getresponse().read()


def livez_counts(directory) -> list[float]:
    """Each worker's own count of GET /livez answers, from its multiprocess file."""
    found = []
    for path in sorted(directory.glob("counter_*.db")):
        values = MmapedDict.read_all_values_from_file(str(path))
        found.append(sum(v for key, v, *_ in values if '"/livez"' in key))
    return found


@pytest.mark.processes
def test_several_workers_add_up_their_counts(procs, tmp_path, settings):
    """Two uvicorn workers in multiprocess mode: once both have answered, every scrape,
    whichever worker answers it, counts the requests both served."""
    shared = tmp_path / "metrics"  # its own directory: every *.db in it is read as metrics
    shared.mkdir()
    env = child_env(settings, PROMETHEUS_MULTIPROC_DIR=shared)
    args = ["-m", "uvicorn", "--factory", "api.app:create_app", "--workers", "2"]
    server = procs.start([*args, "--host", HOST, "--port", "0"], env)
    try:
        port = int(server.wait_for_line(r"running on http://127\.0\.0\.1:(\d+)").group(1))
        server.wait_for_line(r"startup complete(.|\n)*startup complete")
        sent = served_by_both(port, shared)
        # The last answer's count is written just after it is sent: wait until it is in.
        wait_for(
            lambda: (
                requests(samples(get(port, "/metrics").decode()), "/livez", "GET", "200") == sent
            ),
            10,
            f"{sent} requests counted",
        )
        scrapes = [samples(get(port, "/metrics").decode()) for _ in range(6)]
    finally:
        server.signal(signal.SIGTERM)  # the parent stops its workers (SIGKILL would orphan them)
        server.wait()
    assert {requests(found, "/livez", "GET", "200") for found in scrapes} == {sent}


def served_by_both(port: int, directory) -> int:
    """Send GET /livez until both workers have answered some; return how many were sent."""
    sent = 0
    while sent < 2000 and not (len(livez_counts(directory)) == 2 and all(livez_counts(directory))):
        get(port, "/livez")
        sent += 1
    assert len(livez_counts(directory)) == 2 and all(livez_counts(directory))
    return sent


def test_fast_path_reads_are_counted_by_route_and_status(client):
    client.post("/data", json=CONTRACT_POST)
    tag = client.get("/allocations").headers["etag"]
    before = scrape(client)
    client.get("/allocations", headers={"if-none-match": tag})
    client.get("/assign", params={"experiment_id": "ctr_test", "unit_id": "u1"})
    after = scrape(client)
    for route, status in [("/allocations", "304"), ("/assign", "200")]:
        counted = requests(after, route, "GET", status) - requests(before, route, "GET", status)
        assert counted == 1


def test_held_counts_fold_into_the_same_samples_as_observe(client):
    """The fast path's counts are held and added together: the buckets, sum and count
    that come out are exactly those of prometheus-client's own observe() of the same
    durations (a registry of its own with the same buckets is the reference)."""
    durations = [0.0004, 0.001, 0.0011, 0.002, 0.003, 0.2, 10.0, 12.5]  # bounds, between, +Inf
    reference = CollectorRegistry()
    histogram = Histogram("ref", "", registry=reference, buckets=metrics.DURATION_BUCKETS)
    for seconds in durations:
        histogram.observe(seconds)
    expected = {
        (name.replace("ref", "bandit_http_request_duration_seconds"), labels): value
        for (name, labels), value in samples(generate_latest(reference).decode()).items()
        if not name.endswith("_created")
    }
    before = samples(generate_latest(metrics.REGISTRY).decode())
    for status, seconds in zip([200] * 7 + [503], durations, strict=True):
        metrics.HELD.answered("/data", "POST", status, seconds)
    after = samples(generate_latest(metrics.REGISTRY).decode())
    post = (("method", "POST"), ("route", "/data"))
    for (name, labels), value in expected.items():
        ours = (name, tuple(sorted(post + labels)))
        assert after[ours] - before.get(ours, 0) == pytest.approx(value), ours
    assert requests(after, "/data", "POST", "200") - requests(before, "/data", "POST", "200") == 7
    assert requests(after, "/data", "POST", "503") - requests(before, "/data", "POST", "503") == 1


def test_held_counts_reach_the_metrics_within_a_second_unread(client):
    """Another worker's scrape reads this one's files, not its REGISTRY: held counts are
    added by a timer, with nothing reading them."""
    child = metrics.HTTP_REQUESTS.labels("/data", "POST", "299")
    before = child._value.get()
    metrics.HELD.answered("/data", "POST", 299, 0.001)
    assert child._value.get() == before  # held
    wait_for(lambda: child._value.get() == before + 1, metrics.FOLD_AFTER_S + 5, "the fold")
