"""The cache: the bulk loader writes the bytes core.splits writes, a refresh is one swap
(never two runs mixed across experiments), and the web answers while it loads."""

import dataclasses
import json
import re
import sys
import threading
from datetime import date

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import database
from core.experiments import find_experiment
from core.schema import Allocation, AllocationReason, Variant
from core.served import bodies_since
from core.splits import computed_body, placeholder_body, reason_on, rows_on
from tests.helpers import CONTRACT_POST, NOW, load, run_at
from tests.processes import child_env

DAY = date(2025, 12, 22)


def reference_body(name: str) -> bytes:
    """The body as core.splits builds it, one experiment at a time with models."""
    experiment = find_experiment(name)
    days = Allocation.select(Allocation.effective_date).where(Allocation.experiment == experiment)
    if not days.exists():
        names = [v.name for v in experiment.variants.order_by(Variant.id)]
        return placeholder_body(name, names)
    day = max(row.effective_date for row in days)
    return computed_body(name, rows_on(experiment, day), reason_on(experiment.id, day))


def test_the_bulk_loader_writes_the_bytes_of_core_splits(db, settings):
    load(*[("plain", DAY, v, 1000, c) for v, c in [("a", 10), ("b", 30)]])
    load(*[("legacy", DAY, v, 500, c) for v, c in [("x", 5), ("y", 9), ("z", 2)]])
    run_at(NOW, settings)  # stamped at NOW: a time without microseconds
    legacy = find_experiment("legacy")
    AllocationReason.delete().where(AllocationReason.experiment == legacy).execute()
    load(("quoted", DAY, "v1", 10, 1), ("late", DAY, "only", 10, 1))  # not computed yet
    changed = bodies_since(-1)
    bodies = changed.bodies()
    items = changed.items(bodies)
    assert set(bodies) == set(items) == {"plain", "legacy", "quoted", "late"}
    for name, body in bodies.items():
        assert body == reference_body(name), name
        item = json.loads(items[name])
        del item["assignment"]
        assert item == json.loads(body)
    assert bodies_since(changed.version).names() == []


def test_a_refresh_after_a_publish_loads_only_what_changed(db, settings):
    load(("one", DAY, "a", 10, 1), ("two", DAY, "a", 10, 1))
    version = bodies_since(-1).version
    run_at(NOW, settings, trigger="manual", experiment_id="two")
    changed = bodies_since(version)
    assert changed.names() == ["two"] and changed.version > version


@pytest.fixture
def cheap_client(settings):
    sampling = dataclasses.replace(settings.sampling, samples=100)
    with TestClient(create_app(dataclasses.replace(settings, sampling=sampling))) as client:
        yield client


def run_ids(snapshot) -> set[bytes]:
    names = [*snapshot.bodies, *(snapshot.changed.names() if snapshot.changed else [])]
    return {re.search(rb'"run_id":(\w+)', snapshot.body(n)).group(1) for n in names}


def test_readers_never_see_two_runs_mixed_across_experiments(cheap_client, monkeypatch):
    for e in range(150):
        variants = [{"variant_id": v, "impressions": 100, "clicks": e % 50} for v in "ab"]
        cheap_client.post(
            "/data", json={**CONTRACT_POST, "experiment_id": f"e{e}", "variants": variants}
        )
    cheap_client.post("/recompute")
    cache, mixed, done = cheap_client.app.state.cache, [], threading.Event()

    def read():
        while not done.is_set():
            ids = run_ids(cache.snapshot)
            if len(ids) > 1:
                mixed.append(ids)

    monkeypatch.setattr(sys, "getswitchinterval", sys.getswitchinterval)
    sys.setswitchinterval(1e-5)  # switch threads often, so a half-done refresh would show
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(4):
            assert cheap_client.post("/recompute").status_code == 200
    finally:
        done.set()
        reader.join(timeout=30)
        sys.setswitchinterval(0.005)
    assert mixed == []


@pytest.mark.processes
def test_the_web_answers_healthz_while_it_loads_and_serves_once_loaded(tmp_path, procs, settings):
    from core.migrations import open_database

    open_database(settings.database)
    with database.connection_context():
        load(
            *[
                ("ctr_test", DAY, v["variant_id"], v["impressions"], v["clicks"])
                for v in CONTRACT_POST["variants"]
            ]
        )
        run_at(NOW, settings)
    database.close()
    env = child_env(settings, BANDIT_TEST_PAUSE_LOAD="3")
    web = procs.web(env)
    web.wait_for_line("test pause: load")
    status, health = web.request("GET", "/healthz")
    assert (status, health["experiments_cached"]) == (200, 0)  # answered while loading
    status, split = web.request("GET", "/allocation?experiment_id=ctr_test")
    assert (status, split["status"]) == (200, "computed")  # waited for the load
    assert web.request("GET", "/healthz")[1]["experiments_cached"] == 1
