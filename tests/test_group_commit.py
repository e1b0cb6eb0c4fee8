"""Writes that queue up share one commit, and each stays all or nothing."""

import asyncio
import contextlib
import os
import re
import threading
from datetime import date

import pytest

from core.db import database, write_transaction
from core.migrations import open_database
from core.schema import DailyMetric, Experiment, Variant
from ingest import group_commit, metrics
from ingest.group_commit import GroupCommit
from ingest.metrics import MetricRow, store_rows, upsert_in_transaction
from tests.helpers import ROOT

DAY = date(2025, 12, 22)


def rows(experiment: str, clicks: int = 5) -> list[MetricRow]:
    return [MetricRow(experiment, DAY, v, 100, clicks) for v in ("a", "b")]


def blocked_writer(writes: GroupCommit) -> threading.Event:
    """Occupy the writer thread until the returned event is set, so later writes queue."""
    release, started = threading.Event(), threading.Event()
    writes.submit(lambda: started.set() or release.wait(5))
    assert started.wait(5)
    return release


def test_concurrent_stores_all_land_with_their_own_results(db):
    results = {}

    def post(i):
        results[i] = store_rows(rows(f"e{i}", clicks=i))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert all(results[i].new_experiments == [f"e{i}"] for i in range(20))
    assert DailyMetric.select().count() == 40
    assert sorted(m.clicks for m in DailyMetric.select()) == sorted(list(range(20)) * 2)


def test_a_failing_write_rolls_back_alone(db):
    writes = GroupCommit()
    release = blocked_writer(writes)

    def half_then_fail():
        upsert_in_transaction(rows("broken"))
        raise ValueError("bad write")

    good = writes.submit(lambda: upsert_in_transaction(rows("good")))
    bad = writes.submit(half_then_fail)
    release.set()
    assert good.result(5).rows == 2
    with pytest.raises(ValueError, match="bad write"):
        bad.result(5)
    assert [e.name for e in Experiment.select()] == ["good"]


@contextlib.contextmanager
def failing_commit(scope="global"):
    """write_transaction whose commit fails (a full disk): nothing of the group lands."""
    with write_transaction(scope) as transaction:
        yield
        transaction.rollback()
    raise OSError("disk full")


def test_a_failed_commit_fails_every_write_in_the_group(db, monkeypatch):
    writes = GroupCommit()
    release = blocked_writer(writes)

    monkeypatch.setattr(group_commit, "write_transaction", failing_commit)
    futures = [writes.submit(lambda i=i: upsert_in_transaction(rows(f"e{i}"))) for i in range(3)]
    release.set()
    for future in futures:
        with pytest.raises(OSError, match="disk full"):
            future.result(5)
    monkeypatch.setattr(group_commit, "write_transaction", write_transaction)
    assert Experiment.select().count() == 0


def test_a_cancelled_request_does_not_fail_the_others_in_its_group(db):
    # A request whose task is cancelled (its client went away) cancels its future; the
    # writes queued beside it still commit and get their own results.
    writes = GroupCommit()
    release = blocked_writer(writes)
    first = writes.submit(lambda: upsert_in_transaction(rows("e1")))
    second = writes.submit(lambda: upsert_in_transaction(rows("e2")))
    third = writes.submit(lambda: upsert_in_transaction(rows("e3")))
    assert first.cancel()
    release.set()
    assert second.result(5).rows == 2
    assert third.result(5).rows == 2


def known_write(writes: GroupCommit, experiment: str):
    """A write as POST /data queues it: with the ids its group commit has seen."""
    return writes.submit(lambda: upsert_in_transaction(rows(experiment), None, writes.known))


def stored(experiment: str) -> list[tuple]:
    query = (
        DailyMetric.select(Variant.name, DailyMetric.clicks)
        .join(Variant)
        .join(Experiment, on=Variant.experiment == Experiment.id)
        .where(Experiment.name == experiment, DailyMetric.experiment == Experiment.id)
    )
    return sorted(query.tuples())


def test_ids_read_in_a_group_whose_commit_failed_are_not_reused(db, monkeypatch):
    # SQLite gives a rolled-back row's id to the next insert: an id remembered from a
    # group that never committed would send e1's counts to e2's rows.
    writes = GroupCommit()
    release = blocked_writer(writes)

    monkeypatch.setattr(group_commit, "write_transaction", failing_commit)
    failed = known_write(writes, "e1")
    release.set()
    with pytest.raises(OSError, match="disk full"):
        failed.result(5)
    monkeypatch.setattr(group_commit, "write_transaction", write_transaction)
    assert known_write(writes, "e2").result(5).new_experiments == ["e2"]
    assert known_write(writes, "e1").result(5).new_experiments == ["e1"]
    assert stored("e1") == stored("e2") == [("a", 5), ("b", 5)]
    assert Variant.select().count() == 4


def test_ids_read_by_a_write_that_rolled_back_are_not_reused(db):
    writes = GroupCommit()
    release = blocked_writer(writes)

    def half_then_fail():
        upsert_in_transaction(rows("broken"), None, writes.known)
        raise ValueError("bad write")

    good = known_write(writes, "good")
    bad = writes.submit(half_then_fail)
    release.set()
    assert good.result(5).rows == 2
    with pytest.raises(ValueError):
        bad.result(5)
    assert known_write(writes, "other").result(5).new_experiments == ["other"]
    assert known_write(writes, "broken").result(5).new_experiments == ["broken"]
    assert stored("broken") == stored("other") == [("a", 5), ("b", 5)]


def test_known_ids_are_used_once_committed(db, monkeypatch):
    writes = GroupCommit()
    assert known_write(writes, "e1").result(5).new_experiments == ["e1"]
    looked_up = []
    monkeypatch.setattr(metrics, "experiment_ids", lambda names: looked_up.append(names) or {})
    monkeypatch.setattr(metrics, "variant_ids", lambda pks: looked_up.append(pks) or {})
    result = known_write(writes, "e1").result(5)
    assert (result.rows, result.new_experiments, result.new_variants) == (2, [], [])
    assert looked_up == []


def test_a_database_opened_again_at_the_same_path_gets_a_new_writer_connection_sqlite(
    settings, monkeypatch
):
    # The writer used to keep its connection when open_database named the same path
    # again: after the file there was replaced, it went on writing to the old one.
    monkeypatch.setattr(group_commit, "IDLE_CLOSE_S", 60.0)
    open_database(settings.database)
    writes = GroupCommit()
    assert known_write(writes, "e1").result(5).new_experiments == ["e1"]
    path = settings.database.path
    os.rename(path, f"{path}.old")
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.rename(f"{path}{suffix}", f"{path}.old{suffix}")
    open_database(settings.database, create=True)
    with database.connection_context():
        assert known_write(writes, "e1").result(5).new_experiments == ["e1"]
        assert [e.name for e in Experiment.select()] == ["e1"]
        assert stored("e1") == [("a", 5), ("b", 5)]
    database.close()


DELETES_OR_RENAMES = re.compile(
    r"\b(Experiment|Variant)\.(delete|update\((name|experiment)\b)|delete_instance"
    r"|\b(DELETE\s+FROM|UPDATE)\s+\"?(experiment|variant)\b",
    re.IGNORECASE,
)


def test_no_code_deletes_or_renames_an_experiment_or_a_variant():
    # The group commit remembers experiment and variant ids (ingest/metrics.py
    # MetricWriter): sound only while a committed id stays its name's for good.
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for package in ("api", "core", "ingest", "scheduler", "scripts")
        for path in (ROOT / package).rglob("*.py")
        for match in DELETES_OR_RENAMES.finditer(path.read_text())
    ]
    assert found == []


def test_known_facts_are_bounded(monkeypatch):
    monkeypatch.setattr(group_commit, "MAX_KNOWN", 2)
    known = group_commit.Known()
    for key in ("a", "b", "c"):
        known.learn(key, 1)
        known.released(True)
        known.ended(True)
        assert len(known.facts) <= 2
    assert (known.get("a"), known.get("b"), known.get("c")) == (None, None, 1)


def metric_write(writes: GroupCommit, experiment: str, clicks: int = 5):
    """A write as POST /data queues it (ingest.metrics.queue_rows, on this group commit)."""
    return writes.submit(metrics.MetricWrite(rows(experiment, clicks), None, writes.known))


def test_a_group_of_reposts_of_known_arms_runs_as_one_upsert(db, monkeypatch):
    writes = GroupCommit()
    for name in ("e1", "e2", "e3"):
        metric_write(writes, name).result(5)
    monkeypatch.setattr(metrics.MetricWriter, "upsert", lambda *a: pytest.fail("one by one"))
    release = blocked_writer(writes)
    futures = [metric_write(writes, name, clicks=9) for name in ("e1", "e2", "e3")]
    release.set()
    assert [f.result(5).rows for f in futures] == [2, 2, 2]
    assert stored("e1") == stored("e2") == stored("e3") == [("a", 9), ("b", 9)]


def test_a_wrong_write_in_a_joint_group_fails_alone(db):
    writes = GroupCommit()
    for name in ("e1", "e2"):
        metric_write(writes, name).result(5)
    e2 = Experiment.get(Experiment.name == "e2").id
    writes.known.facts[("variant", (e2, "a"))] = 10**9  # an id no variant has
    release = blocked_writer(writes)
    good, wrong = metric_write(writes, "e1", clicks=7), metric_write(writes, "e2", clicks=7)
    release.set()
    assert good.result(5).rows == 2
    with pytest.raises(Exception, match=r"(?i)foreign key"):
        wrong.result(5)
    assert stored("e1") == [("a", 7), ("b", 7)]
    assert stored("e2") == [("a", 5), ("b", 5)]  # all or nothing: b is not 7 either


def test_two_writes_of_the_same_rows_in_one_group_leave_the_later(db):
    writes = GroupCommit()
    metric_write(writes, "e1").result(5)
    release = blocked_writer(writes)
    first, later = metric_write(writes, "e1", clicks=8), metric_write(writes, "e1", clicks=9)
    release.set()
    assert first.result(5).rows == later.result(5).rows == 2
    assert stored("e1") == [("a", 9), ("b", 9)]


def test_a_loops_writes_of_one_group_wake_it_once(db):
    writes = GroupCommit()
    metric_write(writes, "e1").result(5)

    async def main():
        loop = asyncio.get_running_loop()
        wakes = []
        original = loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: wakes.append(a) or original(*a)
        release = blocked_writer(writes)
        futures = [
            writes.submit(
                metrics.MetricWrite(rows("e1", c), None, writes.known), loop.create_future()
            )
            for c in range(5)
        ]
        release.set()
        results = await asyncio.gather(*futures)
        return wakes, results

    wakes, results = asyncio.run(main())
    assert [r.rows for r in results] == [2] * 5
    assert len(wakes) == 1
