"""The publish: rows are staged without the write lock, then replaced in one transaction."""

import sqlite3
from datetime import date

import pytest

import core.db as core_db
from core.schema import Allocation, AllocationReason, Counter, Experiment, Run
from ingest.metrics import MetricRow, store_rows
from scheduler import publish
from scheduler.job import run_job
from tests.helpers import NOW, Other


def load(clicks: int, experiments: int = 3) -> None:
    store_rows(
        [
            MetricRow(f"e{i}", date(2025, 12, 21), v, 1000, clicks + i * (v == "b"))
            for i in range(experiments)
            for v in "ab"
        ]
    )


def split() -> list[tuple]:
    """Every stored allocation and reason, as plain tuples."""
    allocations = Allocation.select(
        Allocation.experiment,
        Allocation.variant,
        Allocation.effective_date,
        Allocation.percentage,
        Allocation.probability,
        Allocation.run,
    ).order_by(Allocation.experiment, Allocation.variant)
    reasons = AllocationReason.select(
        AllocationReason.experiment, AllocationReason.reason, AllocationReason.run
    ).order_by(AllocationReason.experiment)
    return list(allocations.tuples()) + list(reasons.tuples())


def write_from_another_connection(settings, name: str) -> None:
    """What a POST does: take the write lock and commit; timeout 0, so no waiting."""
    with Other(settings, timeout_s=0) as other:
        other.write_experiment(name)


def temporary_tables(db) -> list[str]:
    return core_db.temporary_tables()


def test_another_connection_commits_a_write_while_rows_are_staged(db, settings, monkeypatch):
    load(clicks=50)
    staged_when_written = []
    original = publish.stage_batch

    def stage_then_write(results):
        original(results)
        staged_when_written.append(publish.StagedAllocation.select().count())
        write_from_another_connection(settings, f"w{len(staged_when_written)}")

    monkeypatch.setattr(publish, "STAGE_BATCH", 1)
    monkeypatch.setattr(publish, "stage_batch", stage_then_write)
    summary = run_job(NOW, settings)
    assert summary.status == "success"
    assert staged_when_written == [2, 4, 6]  # two arms per experiment, one batch each
    assert Experiment.select().where(Experiment.name.in_(["w1", "w2", "w3"])).count() == 3
    assert Allocation.select().where(Allocation.run == summary.run_id).count() == 6


def test_the_split_itself_is_written_under_the_sqlite_write_lock(db, settings, monkeypatch):
    load(clicks=50)
    blocked = []
    original = publish.mark_changed

    def write_meanwhile(ids):
        original(ids)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            write_from_another_connection(settings, "meanwhile")
        blocked.append(True)

    monkeypatch.setattr(publish, "mark_changed", write_meanwhile)
    assert run_job(NOW, settings).status == "success"
    assert blocked == [True]


def test_on_postgres_a_post_commits_during_the_publish_and_a_checked_write_waits(
    db, settings, monkeypatch
):
    # The publish holds the global lock (a settings change or another publish waits), but
    # not the one writes of metrics and new experiments need: POST /data never waits on it.
    load(clicks=50)
    seen = []
    original = publish.mark_changed

    def write_meanwhile(ids):
        original(ids)
        write_from_another_connection(settings, "meanwhile")
        with Other(settings, timeout_s=0.05) as other, pytest.raises(Exception, match="lock"):
            other.take_global_lock()
        seen.append(True)

    monkeypatch.setattr(publish, "mark_changed", write_meanwhile)
    assert run_job(NOW, settings).status == "success"
    assert seen == [True]
    assert Experiment.select().where(Experiment.name == "meanwhile").exists()


def test_a_failure_while_staging_keeps_the_previous_split_whole(db, settings, monkeypatch):
    load(clicks=50)
    first = run_job(NOW, settings)
    before, version = split(), Counter.get_by_id("serving").value
    load(clicks=90)
    calls = []
    original = publish.stage_batch

    def fail_on_second_batch(results):
        calls.append(results)
        if len(calls) == 2:
            raise RuntimeError("disk full while staging")
        original(results)

    monkeypatch.setattr(publish, "STAGE_BATCH", 1)
    monkeypatch.setattr(publish, "stage_batch", fail_on_second_batch)
    summary = run_job(NOW, settings)
    assert summary.status == "failed" and "while staging" in summary.error
    assert split() == before and before[0][-1] == first.run_id
    assert Counter.get_by_id("serving").value == version
    assert temporary_tables(db) == []


def test_a_failure_after_the_rows_are_replaced_keeps_the_previous_split_whole(
    db, settings, monkeypatch
):
    load(clicks=50)
    run_job(NOW, settings)
    before, version = split(), Counter.get_by_id("serving").value
    load(clicks=90)
    replaced = []

    def fail_after_replacing(ids):
        replaced.append(Allocation.select().where(Allocation.run != before[0][-1]).count())
        raise RuntimeError("crash after the rows were replaced")

    monkeypatch.setattr(publish, "mark_changed", fail_after_replacing)
    summary = run_job(NOW, settings)
    assert summary.status == "failed"
    assert replaced == [6]  # the new rows were in place, inside the transaction
    assert split() == before
    assert Counter.get_by_id("serving").value == version
    assert Run.get_by_id(summary.run_id).status == "failed"


def test_a_republish_replaces_the_day_and_stamps_only_its_experiments(db, settings):
    load(clicks=50)
    run_job(NOW, settings)
    load(clicks=90, experiments=4)
    again = run_job(NOW, settings)
    assert {row[-1] for row in split()} == {again.run_id}
    assert (Allocation.select().count(), AllocationReason.select().count()) == (8, 4)
    only = run_job(NOW, settings, experiment_id="e3")
    stamped = Experiment.select().where(Experiment.version == Counter.get_by_id("serving").value)
    assert [e.name for e in stamped] == ["e3"]
    assert Allocation.select().where(Allocation.run == only.run_id).count() == 2
    assert Allocation.select().count() == 8


def test_staging_tables_are_temporary_and_gone_after_the_publish(db, settings, monkeypatch):
    load(clicks=50)
    seen = []
    original = publish.stage_batch

    def look(results):
        original(results)
        lasting = [t for t in db.get_tables() if t.startswith("staged")]
        seen.append((sorted(temporary_tables(db)), lasting))

    monkeypatch.setattr(publish, "stage_batch", look)
    assert run_job(NOW, settings).status == "success"
    assert seen == [(["staged_allocation", "staged_reason"], [])]
    assert temporary_tables(db) == []  # the connection stays open (as in the web process)


def test_a_run_with_nothing_to_publish_changes_nothing(db, settings):
    version = Counter.get_by_id("serving").value
    summary = run_job(NOW, settings)
    assert (summary.status, summary.experiments_processed) == ("success", 0)
    assert Counter.get_by_id("serving").value == version
    assert split() == [] and temporary_tables(db) == []


def test_a_cleanup_failure_after_the_commit_does_not_fail_a_published_run(
    db, settings, monkeypatch
):
    load(clicks=50)
    calls = []
    original = db.drop_tables

    def fail_after_the_commit(models, **kwargs):
        calls.append(len(calls))
        if len(calls) == 2:  # the first drop clears leftovers before staging; this is after
            raise sqlite3.OperationalError("disk I/O error")
        return original(models, **kwargs)

    monkeypatch.setattr(db, "drop_tables", fail_after_the_commit)
    summary = run_job(NOW, settings)
    assert len(calls) == 2
    assert summary.status == "success"
    assert Run.get_by_id(summary.run_id).status == "success"
    assert {row[-1] for row in split()} == {summary.run_id}
    monkeypatch.setattr(db, "drop_tables", original)
    assert run_job(NOW, settings).status == "success"  # leftovers are dropped first
