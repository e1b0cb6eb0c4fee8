"""The nightly job with a fixed `now`: aggregation, publish, runs table, determinism."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from core.counts import aggregate_counts
from core.db import database
from core.migrations import open_database
from core.policy import next_effective_date
from core.schema import Allocation, Run
from scheduler import job, publish, runs
from scheduler.__main__ import main
from scheduler.job import run_job
from tests.helpers import NOW, allocations, load, utc


def test_aggregation_sums_every_day_per_variant(db):
    load(
        ("e1", date(2025, 12, 20), "a", 100, 10),
        ("e1", date(2025, 12, 21), "a", 50, 5),
        ("e1", date(2025, 12, 21), "b", 70, 7),
        ("e2", date(2025, 12, 21), "x", 3, 1),
    )
    totals = {
        t.experiment_id: [(a.variant_id, a.impressions, a.clicks) for a in t.arms]
        for t in aggregate_counts()
    }
    assert totals == {"e1": [("a", 150, 15), ("b", 70, 7)], "e2": [("x", 3, 1)]}


def test_aggregation_is_one_query_for_all_experiments(db, monkeypatch):
    load(*[(f"e{i}", date(2025, 12, 21), v, 100, 5) for i in range(20) for v in "ab"])
    executed = []
    original = db.execute_sql
    monkeypatch.setattr(
        db, "execute_sql", lambda sql, *a, **k: executed.append(sql) or original(sql, *a, **k)
    )
    assert len(aggregate_counts()) == 20
    assert len(executed) == 1
    assert "GROUP BY" in executed[0]


@pytest.mark.parametrize(
    "now,expected",
    [
        (utc(2025, 12, 22, 23, 50), date(2025, 12, 23)),
        (utc(2025, 12, 22, 0, 0), date(2025, 12, 23)),
    ],
)
def test_effective_date_is_the_next_local_day(now, expected):
    assert next_effective_date(now, ZoneInfo("UTC")) == expected


def test_effective_date_uses_the_configured_zone():
    # 23:30 UTC on the 22nd is already the 23rd in Berlin.
    assert next_effective_date(utc(2025, 12, 22, 23, 30), ZoneInfo("Europe/Berlin")) == date(
        2025, 12, 24
    )
    with pytest.raises(ValueError):
        next_effective_date(NOW.replace(tzinfo=None), ZoneInfo("UTC"))


def test_run_publishes_every_experiment_and_records_the_run(db, settings):
    load(
        ("ctr_test", date(2025, 12, 22), "control", 1000, 50),
        ("ctr_test", date(2025, 12, 22), "variant", 1000, 70),
        ("other", date(2025, 12, 22), "a", 10, 1),
        ("other", date(2025, 12, 22), "b", 10, 2),
    )
    summary = run_job(NOW, settings, "nightly")
    assert (summary.status, summary.experiments_processed) == ("success", 2)
    run = Run.get_by_id(summary.run_id)
    assert (run.trigger, run.status, str(run.effective_date)) == (
        "nightly",
        "success",
        "2025-12-23",
    )
    assert run.finished_at is not None and run.error is None
    rows = allocations()
    assert [r[0] for r in rows] == ["control", "variant"]
    assert sum(r[1] for r in rows) == 100.0
    assert rows[1][1] == pytest.approx(97.0, abs=1.0)
    assert Allocation.select().count() == 4


def test_same_inputs_give_the_same_outputs(db, settings):
    load(
        ("ctr_test", date(2025, 12, 22), "control", 1000, 50),
        ("ctr_test", date(2025, 12, 22), "variant", 1000, 70),
    )
    run_job(NOW, settings)
    first = allocations()
    run_job(NOW, settings)
    assert allocations() == first
    assert Allocation.select().count() == 2


def test_history_is_kept_across_days(db, settings):
    load(
        ("ctr_test", date(2025, 12, 21), "control", 100, 5),
        ("ctr_test", date(2025, 12, 21), "v", 100, 7),
    )
    run_job(utc(2025, 12, 21, 23, 50), settings, "nightly")
    run_job(NOW, settings, "nightly")
    assert sorted({r[3] for r in allocations()}) == ["2025-12-22", "2025-12-23"]


def test_failed_publish_keeps_previous_allocations_and_records_the_error(db, settings, monkeypatch):
    load(
        ("ctr_test", date(2025, 12, 21), "control", 100, 5),
        ("ctr_test", date(2025, 12, 21), "v", 100, 7),
    )
    run_job(NOW, settings)
    before = allocations()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(job, "publish_allocations", broken)
    summary = run_job(NOW, settings)
    assert summary.status == "failed"
    run = Run.get_by_id(summary.run_id)
    assert run.status == "failed" and "disk full" in run.error
    assert allocations() == before


def test_partial_publish_is_rolled_back(db, settings, monkeypatch):
    load(*[(f"e{i}", date(2025, 12, 21), v, 100, 5) for i in range(3) for v in "ab"])
    calls = []
    original = publish.mark_changed

    def fail_after_inserts(ids):
        calls.append(ids)
        raise RuntimeError("crash after the inserts")

    monkeypatch.setattr(publish, "mark_changed", fail_after_inserts)
    assert run_job(NOW, settings).status == "failed"
    assert calls and Allocation.select().count() == 0
    monkeypatch.setattr(publish, "mark_changed", original)
    assert run_job(NOW, settings).status == "success"
    assert Allocation.select().count() == 6


def test_run_once_command_publishes_and_reports(database_env, capsys):
    open_database(database_env.database)
    with database.connection_context():
        load(
            ("ctr_test", date(2025, 12, 21), "control", 100, 5),
            ("ctr_test", date(2025, 12, 21), "v", 100, 7),
        )
    assert main(["run-once"]) == 0
    assert "success, 1 experiments" in capsys.readouterr().out
    assert main(["run-once", "--experiment", "missing"]) == 1
    assert "unknown experiment 'missing'" in capsys.readouterr().err
    with database.connection_context():
        assert Run.select().where(Run.status == "success").count() == 1


def test_a_published_run_is_success_in_the_same_commit(db, settings, monkeypatch):
    # If the process died right after the publish commit, the run must not read 'failed'
    # while its split is served: the status is written inside the publish transaction.
    load(
        ("ctr_test", date(2025, 12, 21), "control", 100, 5),
        ("ctr_test", date(2025, 12, 21), "v", 100, 7),
    )
    statuses = []
    original = runs.mark_succeeded

    def spy(run_id, processed, now):
        original(run_id, processed, now)
        statuses.append(Run.get_by_id(run_id).status)  # still inside the transaction

    monkeypatch.setattr(job, "mark_succeeded", spy)
    summary = run_job(NOW, settings)
    assert statuses == ["success"]
    assert Run.get_by_id(summary.run_id).experiments_processed == 1


def test_a_run_marked_abandoned_meanwhile_publishes_nothing(db, settings, monkeypatch):
    load(
        ("ctr_test", date(2025, 12, 21), "control", 100, 5),
        ("ctr_test", date(2025, 12, 21), "v", 100, 7),
    )
    original = publish.mark_changed

    def abandoned_by_another_process(ids):
        original(ids)
        Run.update(status="failed", error="abandoned").where(Run.status == "running").execute()

    monkeypatch.setattr(publish, "mark_changed", abandoned_by_another_process)
    summary = run_job(NOW, settings)
    assert summary.status == "failed"
    assert "marked abandoned" in summary.error
    assert Allocation.select().count() == 0
