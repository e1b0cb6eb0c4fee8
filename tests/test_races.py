"""Writers in separate processes (or hosts) at the same moment, on both engines: SQLite
serializes them with its one write lock; PostgreSQL must give the same outcome with row
locks, upserts, advisory locks and retries. Each group commit here has its own writer
thread and connection, as a web process on another host would."""

import contextlib
import threading
from datetime import date

from core.schema import DailyMetric, Experiment, Run, Variant
from ingest.group_commit import GroupCommit
from ingest.metrics import MetricRow, upsert_in_transaction
from scheduler import clock
from scheduler.job import run_job
from tests.helpers import NOW, load_contract, utc

DAY = date(2025, 12, 22)


def rows(experiment: str, variants=("a", "b"), clicks: int = 5) -> list[MetricRow]:
    return [MetricRow(experiment, DAY, v, 100, clicks) for v in variants]


def at_once(*actions) -> list:
    """Run the actions in threads released together; their results (or exceptions)."""
    start = threading.Barrier(len(actions))
    results = [None] * len(actions)

    def run(i, action):
        start.wait(5)
        try:
            results[i] = action()
        except Exception as exc:  # the test looks at it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_writers_creating_the_same_experiment_at_once_all_succeed(db):
    # Without ON CONFLICT DO NOTHING the second of two PostgreSQL writers got a unique
    # violation (a 500) for the experiment both created.
    hosts = [GroupCommit() for _ in range(4)]
    for round_ in range(5):
        name = f"new_{round_}"
        futures = at_once(
            *[lambda h=h, n=name: h.submit(lambda: upsert_in_transaction(rows(n))) for h in hosts]
        )
        assert [f.result(10).rows for f in futures] == [2, 2, 2, 2]
    assert Experiment.select().count() == 5
    assert Variant.select().count() == 10
    assert DailyMetric.select().count() == 10


def test_two_groups_that_deadlock_are_both_committed(db):
    # Two hosts upserting the same two rows in opposite orders: PostgreSQL fails one of
    # them with a deadlock, and that group runs again whole; SQLite serializes them.
    upsert_in_transaction_committed(rows("shared"))
    meet = threading.Barrier(2)

    def in_order(variants, clicks):
        def work():
            first, second = (rows("shared", (v,), clicks) for v in variants)
            upsert_in_transaction(first)
            # Both hold their first row now (PostgreSQL); a broken barrier means they were
            # serialized (SQLite) or this is the retry after the deadlock.
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait(1)
            return upsert_in_transaction(second)

        return work

    one, two = GroupCommit(), GroupCommit()
    futures = at_once(
        lambda: one.submit(in_order(("a", "b"), 7)), lambda: two.submit(in_order(("b", "a"), 9))
    )
    assert [f.result(20).rows for f in futures] == [1, 1]
    clicks = {m.clicks for m in DailyMetric.select()}
    assert clicks in ({7}, {9})  # one group's two rows, then the other's: never a mix


def upsert_in_transaction_committed(batch) -> None:
    GroupCommit().submit(lambda: upsert_in_transaction(batch)).result(10)


def test_two_recomputes_at_once_both_succeed_and_one_split_is_served(db, settings):
    # Manual runs are not deduplicated: on PostgreSQL the second publish's DELETE used to
    # miss the first's rows and fail on the unique index; the publish lock makes the
    # later commit win, as on SQLite.
    load_contract()
    summaries = at_once(
        lambda: threaded_run(settings, "manual"), lambda: threaded_run(settings, "manual")
    )
    assert [s.status for s in summaries] == ["success", "success"]
    days = {a for (a,) in Run.select(Run.effective_date).tuples()}
    assert len(days) == 1


def threaded_run(settings, trigger):
    from core.db import database

    with database.connection_context():
        return run_job(NOW, settings, trigger)


def test_two_clocks_at_the_same_scheduled_time_make_one_run(db, settings):
    load_contract()
    fire = utc(2025, 12, 22, 23, 50)

    def scheduled():
        from core.db import database

        with database.connection_context():
            return clock.run_scheduled(settings, "nightly", fire, NOW)

    results = at_once(scheduled, scheduled, scheduled)
    assert sum(r is not None for r in results) == 1, results
    assert Run.select().count() == 1
