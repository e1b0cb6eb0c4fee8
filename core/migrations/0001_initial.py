"""Version 1, the first release: experiments, variants, daily metrics, runs, allocations,
the serving counter and the version table itself.

Frozen copies of the tables as that release declared them, bound to the database only while
the step runs. Counts and ids that may pass 32 bits are BigIntegerField and floats
DoubleField (8 bytes on every backend); on SQLite that is the INTEGER and REAL the release
wrote. Python-side defaults are left out: they are not part of the schema.
"""

from peewee import (
    BigIntegerField,
    CharField,
    DateField,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)


class Frozen(Model):
    class Meta:
        legacy_table_names = False


class Counter(Frozen):
    name = CharField(primary_key=True)
    value = BigIntegerField()


class Experiment(Frozen):
    name = CharField(max_length=128, unique=True)
    created_at = DateTimeField()
    version = BigIntegerField(index=True)


class Variant(Frozen):
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")
    name = CharField(max_length=128)
    created_at = DateTimeField()

    class Meta:
        indexes = ((("experiment", "name"), True),)


class DailyMetric(Frozen):
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")
    variant = ForeignKeyField(Variant, on_delete="CASCADE")
    date = DateField()
    impressions = BigIntegerField()
    clicks = BigIntegerField()
    updated_at = DateTimeField()

    class Meta:
        indexes = ((("experiment", "date", "variant"), True),)


class Run(Frozen):
    """No lease yet: step 3 adds scheduled_for, lease_until and holder."""

    trigger = CharField()
    effective_date = DateField()
    experiment_filter = CharField(null=True)
    started_at = DateTimeField()
    finished_at = DateTimeField(null=True)
    status = CharField()
    experiments_processed = IntegerField()
    error = TextField(null=True)


class Allocation(Frozen):
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")  # indexed; step 4 drops it
    variant = ForeignKeyField(Variant, on_delete="CASCADE")
    effective_date = DateField()
    percentage = DoubleField()
    probability = DoubleField()
    seed = BigIntegerField()
    run = ForeignKeyField(Run)
    created_at = DateTimeField()

    class Meta:
        indexes = ((("experiment", "effective_date", "variant"), True),)


class SchemaVersion(Frozen):
    version = IntegerField()


TABLES = [Counter, Experiment, Variant, DailyMetric, Run, Allocation, SchemaVersion]


def up(migrator, db) -> None:
    with db.bind_ctx(TABLES):
        db.create_tables(TABLES, safe=False)
        Counter.insert(name="serving", value=0).execute()
