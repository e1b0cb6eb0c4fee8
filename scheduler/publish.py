"""Store a run's allocations in one transaction and tell web processes they changed.

The rows are first staged in TEMPORARY tables on the job's own connection. At 100,000
experiments, reading the spill file and binding some 450,000 rows takes seconds of Python;
done inside the write transaction, every POST writer would wait for it. The temporary
tables live in the connection's temporary database (a file, with SQLite's default
temp_store, so memory stays flat) and writing them takes no lock on the main database.
The publish then replaces the day's rows from them with a few set-based statements inside
one write transaction. The tables are dropped afterwards (they would otherwise outlive the
publish on a connection that stays open) and vanish with the connection if it dies.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime

from peewee import BigIntegerField, FloatField, IntegerField, TextField, Value, chunked

from core import testhooks
from core.changes import mark_changed
from core.db import (
    analyze_staged,
    bound,
    create_staging_table,
    database,
    drop_temporary_tables,
    stage_rows,
    write_transaction,
)
from core.ownership import ownership_of
from core.schema import Allocation, AllocationReason, BaseModel
from scheduler.runs import Clock, naive_utc

STAGE_BATCH = 1000  # experiments bound per executemany


class StagedAllocation(BaseModel):
    """One row per (experiment, arm) of the run, in the order the results came."""

    experiment_pk = IntegerField()
    variant_pk = IntegerField()
    percentage = FloatField()
    probability = FloatField()
    seed = BigIntegerField()

    class Meta:
        table_name = "staged_allocation"
        temporary = True
        primary_key = False


class StagedReason(BaseModel):
    """One row per experiment of the run; its key is what the publish replaces."""

    experiment_pk = IntegerField(primary_key=True)
    reason = TextField()
    explanation = TextField()
    buckets = TextField()  # which arm owns which buckets (core/ownership.py)

    class Meta:
        table_name = "staged_reason"
        temporary = True


STAGED = [StagedAllocation, StagedReason]


def staged_experiments():
    """A subquery: the ids of the experiments staged."""
    return StagedReason.select(StagedReason.experiment_pk)


def staged_allocation_rows(results) -> list[tuple]:
    return [
        (r.experiment_pk, arm.variant_pk, arm.percentage, arm.probability, r.seed)
        for r in results
        for arm in r.arms
    ]


def staged_reason_rows(results) -> list[tuple]:
    return [(r.experiment_pk, r.reason, r.explanation, r.buckets) for r in results]


def owned(batch: list, effective_date: date) -> list:
    """The batch's results, each with its bucket ownership for the day."""
    buckets = ownership_of(batch, effective_date)
    return [replace(r, buckets=b) for r, b in zip(batch, buckets, strict=True)]


def stage_batch(results: list) -> None:
    """SQLite: one prepared insert per row; PostgreSQL: COPY (core.db.stage_rows)."""
    stage_rows(StagedAllocation, staged_allocation_rows(results))
    stage_rows(StagedReason, staged_reason_rows(results))


def stage(results, effective_date: date) -> None:
    """Write results (a stream) to the staging tables, a batch at a time, each result with
    its bucket ownership for the day."""
    with database.atomic():  # one commit of the temporary database; no main-database lock
        for batch in chunked(results, STAGE_BATCH):
            stage_batch(owned(batch, effective_date))
        testhooks.pause("stage")
    for model in STAGED:  # PostgreSQL: the planner's statistics, outside the write lock
        analyze_staged(model)


@contextmanager
def staged(results, effective_date: date) -> Iterator[None]:
    """The results in the staging tables for the duration of the block; dropped after."""
    database.drop_tables(STAGED)
    for model in STAGED:
        create_staging_table(model)
    try:
        stage(results, effective_date)
        yield
    finally:
        drop_temporary_tables(STAGED)


@dataclass(frozen=True)
class PublishTimes:
    staging: float  # seconds staging the rows, before asking for the write lock
    locked: float  # seconds the write lock was held, from BEGIN IMMEDIATE to the commit


def publish_allocations(
    run_id: int, effective_date: date, results, clock: Clock, before_commit=None
) -> PublishTimes:
    """Replace each experiment's allocation for the day; all or nothing.

    `results` may be a stream (read back from a spill file): it is staged first, without
    the write lock, then copied in one write transaction; the rows are stamped clock().
    before_commit() runs last inside it (the job records the run's success there, so the
    split and its run's status commit together).
    """
    started = time.monotonic()
    with staged(results, effective_date):
        staged_at = time.monotonic()
        with write_transaction():
            locked = time.monotonic()
            replace_allocations(run_id, effective_date, clock())
            replace_reasons(run_id, effective_date)
            mark_changed(staged_experiments())
            testhooks.pause("publish")
            if before_commit is not None:
                before_commit()
        committed = time.monotonic()
    return PublishTimes(staging=staged_at - started, locked=committed - locked)


def replace_allocations(run_id: int, effective_date: date, created_at: datetime) -> None:
    """The staged experiments' rows for the day, instead of what was there; in SQL alone."""
    day = bound(effective_date)
    (
        Allocation.delete()
        .where(Allocation.experiment.in_(staged_experiments()) & (Allocation.effective_date == day))
        .execute()
    )
    staged_rows = StagedAllocation.select(
        StagedAllocation.experiment_pk,
        StagedAllocation.variant_pk,
        Value(day),
        StagedAllocation.percentage,
        StagedAllocation.probability,
        StagedAllocation.seed,
        Value(run_id),
        Value(bound(naive_utc(created_at))),
    )
    fields = [
        Allocation.experiment,
        Allocation.variant,
        Allocation.effective_date,
        Allocation.percentage,
        Allocation.probability,
        Allocation.seed,
        Allocation.run,
        Allocation.created_at,
    ]
    Allocation.insert_from(staged_rows, fields=fields).execute()


def replace_reasons(run_id: int, effective_date: date) -> None:
    """The staged experiments' reasons for the day, instead of what was there."""
    day = bound(effective_date)
    (
        AllocationReason.delete()
        .where(
            AllocationReason.experiment.in_(staged_experiments())
            & (AllocationReason.effective_date == day)
        )
        .execute()
    )
    staged_rows = StagedReason.select(
        StagedReason.experiment_pk,
        Value(day),
        Value(run_id),
        StagedReason.reason,
        StagedReason.explanation,
        StagedReason.buckets,
    )
    fields = [
        AllocationReason.experiment,
        AllocationReason.effective_date,
        AllocationReason.run,
        AllocationReason.reason,
        AllocationReason.explanation,
        AllocationReason.buckets,
    ]
    AllocationReason.insert_from(staged_rows, fields=fields).execute()
