"""Where a bulk load's valid rows wait for the write transaction: a temporary table.

A load is all or nothing, so no row is written before the whole file has been checked.
Keeping every row in Python until then would make memory grow with the file; instead the
loader adds each valid row here, and every BATCH_SIZE rows the batch goes to a TEMP table
on the loader's own connection. SQLite keeps that table in a temporary file (with its
default temp_store) behind a small page cache of its own, so the loader holds at most one
batch of rows however long the file.
The table's unique key finds a row that repeats the (experiment, date, variant) of an
earlier row, which a dict of every key seen would again hold in memory: on SQLite as the
row arrives (the index is there from the start and the row is left out); on PostgreSQL,
where the rows go in with COPY into a table without that index, when the index is built
after the last row (`finish`), and only if that fails, one query names every repeat.
There one COPY takes every batch of the file (core.db.staging_stream), so the server
stores a batch while the loader reads the next.
Once the file is valid, `store` copies the table into daily_metric with one INSERT ...
SELECT in the write transaction: the database joins each row to its ids.

A TEMP table belongs to one connection: stage and store on the same thread and
connection, not through the group-commit writer thread (ingest/group_commit.py).
"""

from contextlib import ExitStack
from datetime import date

from peewee import SQL, BigIntegerField, DateField, IntegerField, Model, TextField, Value, fn

from core.db import (
    analyze_staged,
    bound,
    create_staging_table,
    database,
    drop_temporary_tables,
    index_staged,
    prepared,
    slices,
    staging_keeps_out_repeats,
    staging_stream,
    write_transaction,
)
from core.runs_view import BULK_ROWS_COUNTER, add_to_counter
from core.schema import Experiment, Variant, utcnow
from ingest.metrics import MetricRow, MetricWriter, StoreResult

BATCH_SIZE = 10_000  # rows held in memory before they go to the table


class StagedMetric(Model):
    line = IntegerField(primary_key=True)  # rows arrive in line order: appends
    experiment_id = TextField()
    date = DateField()  # holds the text bound for daily_metric (SQLite: DATE keeps text)
    variant_id = TextField()
    impressions = BigIntegerField()
    clicks = BigIntegerField()

    class Meta:
        database = database
        table_name = "staged_metric"
        temporary = True
        indexes = ((("experiment_id", "variant_id", "date"), True),)


class Staging:
    """The staged rows of one file; the table exists inside `with Staging() as s:` only."""

    def __init__(self, batch_size: int | None = None, max_arms: int | None = None):
        self.batch_size = batch_size or BATCH_SIZE
        self.max_arms = max_arms
        self.batch: list[tuple] = []
        self.duplicates: list[tuple[int, str]] = []  # (line, problem), in line order
        self.days: dict[date, str] = {}
        self.checks_on_arrival = True  # set in __enter__, by the engine
        self.stream = ExitStack()  # the staging_stream, from the first batch until finish
        self.write = None

    def __enter__(self) -> "Staging":
        create_staging_table(StagedMetric)
        self.checks_on_arrival = staging_keeps_out_repeats()
        return self

    def __exit__(self, *exc_info) -> None:
        self.batch = []
        try:
            self.stream.__exit__(*exc_info)  # after an error: the COPY is abandoned
        finally:
            drop_temporary_tables([StagedMetric])

    def add(self, line: int, row: MetricRow) -> None:
        experiment_id, day, variant_id, impressions, clicks = row
        text = self.days.get(day) or self.days.setdefault(day, bound(day))
        self.batch.append((line, experiment_id, text, variant_id, impressions, clicks))
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Move the batch to the table. A row whose key is there already stays out, and
        is noted in `duplicates`."""
        if not self.batch:
            return
        if self.write is None:  # no other statement on this connection until finish
            self.write = self.stream.enter_context(staging_stream(StagedMetric))
        self.write(self.batch)
        # Counted, not taken from the cursor: executemany's rowcount differs by driver.
        if self.checks_on_arrival and staged_since(self.batch[0][0]) < len(self.batch):
            self.duplicates += duplicates_in(self.batch)
        self.batch = []

    def finish(self) -> None:
        """After the last row: flush, then (where the unique index is built only now) find
        the rows that repeat an earlier key, and give the planner the table's statistics."""
        self.flush()
        self.stream.close()  # every row is in the table now
        if not index_staged(StagedMetric):
            self.duplicates = repeated_keys()
            # The table then holds the first row of each key, as where repeats stay out.
            with database.atomic():
                for lines in slices([line for line, _ in self.duplicates], 1000):
                    StagedMetric.delete().where(StagedMetric.line.in_(lines)).execute()
            index_staged(StagedMetric)
        analyze_staged(StagedMetric)

    def store(self) -> StoreResult:
        """Upsert every staged row in one write transaction: all of them or none."""
        self.flush()
        pairs = staged_pairs()
        with write_transaction("ingest"):
            writer = MetricWriter(self.max_arms)
            writer.upsert_selected(pairs, rows_with_ids(bound(utcnow())))
            writer.mark_new_for_serving()
            add_to_counter(BULK_ROWS_COUNTER, writer.result.rows)  # GET /metrics reports it
        return writer.result


def first_line_of_key():
    """The line of the staged row with a given (experiment, variant, date)."""
    staged = StagedMetric
    return staged.select(staged.line).where(
        (staged.experiment_id == "") & (staged.variant_id == "") & (staged.date == "")
    )


def staged_since(line: int) -> int:
    return StagedMetric.select().where(StagedMetric.line >= line).count()


def duplicates_in(batch: list[tuple]) -> list[tuple[int, str]]:
    """(line, problem) for each row of the batch that the table kept out: the row of an
    earlier line has its key. Only runs for a batch that had such rows."""
    staged = StagedMetric
    kept = {
        line for (line,) in staged.select(staged.line).where(staged.line >= batch[0][0]).tuples()
    }
    found = []
    for line, experiment_id, day, variant_id, _, _ in batch:
        if line not in kept:
            key = (experiment_id, variant_id, day)
            (first,) = database.execute_sql(prepared(first_line_of_key), key).fetchone()
            found.append(
                (line, f"duplicate of line {first} for {experiment_id}/{day}/{variant_id}")
            )
    return found


def repeated_keys() -> list[tuple[int, str]]:
    """(line, problem) for every staged row whose key an earlier line has, in line order:
    one pass over a table that holds every row (PostgreSQL, after index_staged failed)."""
    staged = StagedMetric
    key = [staged.experiment_id, staged.variant_id, staged.date]
    first = fn.MIN(staged.line).over(partition_by=key)
    keyed = staged.select(staged.line, first.alias("first"), *key).alias("keyed")
    query = (
        staged.select(keyed.c.line, keyed.c.first, *(keyed.c[f.name] for f in key))
        .from_(keyed)
        .where(keyed.c.line != keyed.c.first)
        .order_by(keyed.c.line)
    )
    return [
        (line, f"duplicate of line {first} for {experiment_id}/{day}/{variant_id}")
        for line, first, experiment_id, variant_id, day in database.execute(query)
    ]


def staged_pairs() -> list[tuple[str, str]]:
    """The (experiment, variant) names of the staged rows, in order of first appearance."""
    staged = StagedMetric
    query = (
        staged.select(staged.experiment_id, staged.variant_id)
        .group_by(staged.experiment_id, staged.variant_id)
        .order_by(fn.MIN(staged.line))
    )
    return list(query.tuples())


def rows_with_ids(now: str):
    """The staged rows as daily_metric's upsert takes them (UPSERT_FIELDS), in line order."""
    staged = StagedMetric
    query = (
        staged.select(
            Experiment.id, Variant.id, staged.date, staged.impressions, staged.clicks, Value(now)
        )
        .join(Experiment, on=(Experiment.name == staged.experiment_id))
        .join(
            Variant,
            on=((Variant.experiment == Experiment.id) & (Variant.name == staged.variant_id)),
        )
        # Without a WHERE, SQLite would read the upsert's ON CONFLICT as a join's ON.
        .where(SQL("TRUE"))
        .order_by(staged.line)
    )
    return query
