"""Stage a run's results in temporary tables before the publish takes the write lock.

At 100,000 experiments, reading the spill file and binding some 450,000 rows takes
seconds of Python. Done inside the write transaction, every POST writer waits for it, so
the rows first go into TEMPORARY tables on the job's own connection. Those live in the
connection's temporary database (a file, with SQLite's default temp_store, so memory
stays flat) and writing them takes no lock on the main database: writers carry on. The
publish then replaces the day's rows from them with a few set-based statements that run
inside the database. The tables are dropped afterwards (they would otherwise outlive the
publish on a connection that stays open) and vanish with the connection if it dies.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from peewee import BigIntegerField, FloatField, IntegerField, TextField

from core import testhooks
from core.db import database, drop_temporary_tables, execute_many
from core.models import BaseModel
from scheduler.batches import batched

STAGE_BATCH = 1000  # experiments bound per executemany


class StagedAllocation(BaseModel):
    """One row per (experiment, arm) of the run, in the order the results came."""

    experiment_id = IntegerField()
    variant_id = IntegerField()
    percentage = FloatField()
    probability = FloatField()
    seed = BigIntegerField()

    class Meta:
        table_name = "staged_allocation"
        temporary = True
        primary_key = False


class StagedReason(BaseModel):
    """One row per experiment of the run; its key is what the publish replaces."""

    experiment_id = IntegerField(primary_key=True)
    reason = TextField()
    explanation = TextField()

    class Meta:
        table_name = "staged_reason"
        temporary = True


STAGED = [StagedAllocation, StagedReason]


def staged_experiments():
    """A subquery: the ids of the experiments staged."""
    return StagedReason.select(StagedReason.experiment_id)


def allocation_rows(results) -> list[tuple]:
    return [
        (r.experiment_pk, arm.variant_pk, arm.percentage, arm.probability, r.seed)
        for r in results
        for arm in r.arms
    ]


def reason_rows(results) -> list[tuple]:
    return [(r.experiment_pk, r.reason, r.explanation) for r in results]


def stage_batch(results: list) -> None:
    rows, fields = allocation_rows(results), StagedAllocation._meta.sorted_fields
    execute_many(StagedAllocation.insert_many(rows[:1], fields=fields), rows)
    reasons, fields = reason_rows(results), StagedReason._meta.sorted_fields
    execute_many(StagedReason.insert_many(reasons[:1], fields=fields), reasons)


def stage(results) -> None:
    """Write results (a stream) to the staging tables, a batch at a time."""
    with database.atomic():  # one commit of the temporary database; no main-database lock
        for batch in batched(results, STAGE_BATCH):
            stage_batch(batch)
        testhooks.pause("stage")


@contextmanager
def staged(results) -> Iterator[None]:
    """The results in the staging tables for the duration of the block; dropped after."""
    database.drop_tables(STAGED)
    database.create_tables(STAGED)
    try:
        stage(results)
        yield
    finally:
        drop_temporary_tables(STAGED)
