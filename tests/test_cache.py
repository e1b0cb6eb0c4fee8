"""The cache: the bulk loader writes the bytes core.splits writes, a refresh is one swap
(never two runs mixed across experiments), and the web answers while it loads."""

import dataclasses
import json
import re
import sys
import threading
from datetime import date, timedelta

import pytest
from fastapi.testclient import TestClient
from peewee import fn

from api.app import create_app
from api.cache import AllocationCache, Snapshot, next_snapshot
from core import served
from core.db import OperationalError, database
from core.experiments import find_experiment
from core.schema import Allocation, AllocationReason, Variant
from core.served import Changed, bodies_since
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


def test_the_reason_served_is_the_one_of_the_day_served(db, settings):
    load(("split", DAY, "a", 1000, 10), ("split", DAY, "b", 1000, 30))
    run_at(NOW, settings)
    run_at(NOW + timedelta(days=1), settings)
    latest = AllocationReason.select(fn.MAX(AllocationReason.effective_date)).scalar()
    AllocationReason.delete().where(AllocationReason.effective_date == latest).execute()
    AllocationReason.update(explanation="the day before's").execute()
    body = bodies_since(-1).bodies()["split"]
    assert body == reference_body("split")  # served as a split published without a reason
    assert json.loads(body)["explanation"] != "the day before's"


def test_a_refresh_after_a_publish_loads_only_what_changed(db, settings):
    load(("one", DAY, "a", 10, 1), ("two", DAY, "a", 10, 1))
    version = bodies_since(-1).version
    run_at(NOW, settings, trigger="manual", experiment_id="two")
    changed = bodies_since(version)
    assert changed.names() == ["two"] and changed.version > version


def test_the_swap_is_called_with_the_bodies_before_the_arms_are_read(db, settings):
    load(("one", DAY, "a", 10, 1), ("one", DAY, "b", 10, 2), ("new", DAY, "x", 10, 1))
    run_at(NOW, settings, trigger="manual", experiment_id="one")
    seen = []
    changed = bodies_since(-1, lambda c: seen.append((c.bodies(), dict(c.arms))))
    assert seen == [({"one": reference_body("one"), "new": reference_body("new")}, {})]
    assert changed.arms == {"one": ["a", "b"], "new": ["x"]}
    assert bodies_since(-1, lambda c: False).arms == {}  # nothing swapped: no items needed


def test_a_snapshot_keeps_the_bodies_of_the_experiments_that_did_not_change():
    served = {"a": b"A", "b": b"B", "c": b"C"}
    base = Snapshot(1, served, {}, {name: body.lower() for name, body in served.items()})
    most = next_snapshot(base, Changed({"a": [], "b": []}, {"new": ["x"]}, {}, 2))
    assert (most.bodies, most.items) == ({"c": b"C"}, {"c": b"c"})
    every = next_snapshot(base, Changed({name: [] for name in served}, {}, {}, 3))
    assert (every.bodies, every.items) == ({}, {})


def test_a_refresh_that_fails_after_its_swap_completes_it_and_is_read_again(
    db, settings, monkeypatch
):
    load(("one", DAY, "a", 1000, 10), ("one", DAY, "b", 1000, 30))
    run_at(NOW, settings)
    cache = AllocationCache()
    cache.refresh()
    before = cache.snapshot
    run_at(NOW + timedelta(days=1), settings)
    real, failures = served.arm_rows, [OperationalError("disk I/O error")]

    def arm_rows(version):
        if failures:
            raise failures.pop()
        return real(version)

    monkeypatch.setattr(served, "arm_rows", arm_rows)
    with pytest.raises(OperationalError):
        cache.refresh()
    assert cache.snapshot.complete.is_set()  # GET /allocations does not wait forever
    assert cache.snapshot.body("one") == reference_body("one")  # the new split is served
    assert cache.snapshot.items == before.items  # and the bulk is the previous run, whole
    assert cache.refresh() == 1  # read again, arms and all
    assert json.loads(cache.snapshot.items["one"])["date"] == "2025-12-24"


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
