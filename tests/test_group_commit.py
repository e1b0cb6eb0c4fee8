"""Writes that queue up share one commit, and each stays all or nothing."""

import contextlib
import threading
from datetime import date

import pytest

from core.db import write_transaction
from core.schema import DailyMetric, Experiment
from ingest import group_commit
from ingest.group_commit import GroupCommit
from ingest.metrics import MetricRow, store_rows, upsert_in_transaction

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


def test_a_failed_commit_fails_every_write_in_the_group(db, monkeypatch):
    writes = GroupCommit()
    release = blocked_writer(writes)

    @contextlib.contextmanager
    def failing_commit(scope="global"):
        with write_transaction(scope) as transaction:
            yield
            transaction.rollback()
        raise OSError("disk full")

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
