"""Version 2: per-experiment settings, archived variants, and the reason for each split.

New tables only. The tables they refer to appear as stubs holding just the key the foreign
keys point at; their other columns are step 1's business.
"""

from peewee import (
    BigIntegerField,
    BooleanField,
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


class Experiment(Frozen):
    pass


class Variant(Frozen):
    pass


class Run(Frozen):
    pass


class ExperimentPolicy(Frozen):
    experiment = ForeignKeyField(Experiment, unique=True, on_delete="CASCADE")
    min_allocation = DoubleField(null=True)
    min_impressions = BigIntegerField(null=True)
    exploration_days = IntegerField(null=True)
    winner_probability = DoubleField(null=True)
    value_remaining = DoubleField(null=True)
    auto_rollout = BooleanField(null=True)
    window_days = IntegerField(null=True)
    discount = DoubleField(null=True)
    method = CharField(null=True)
    archived_at = DateTimeField(null=True)
    updated_at = DateTimeField()


class ArchivedVariant(Frozen):
    variant = ForeignKeyField(Variant, unique=True, on_delete="CASCADE")
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")
    archived_at = DateTimeField()


class AllocationReason(Frozen):
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")  # indexed; step 4 drops it
    effective_date = DateField()
    run = ForeignKeyField(Run)
    reason = CharField()
    explanation = TextField()

    class Meta:
        indexes = ((("experiment", "effective_date"), True),)


TABLES = [ExperimentPolicy, ArchivedVariant, AllocationReason]


def up(migrator, db) -> None:
    with db.bind_ctx(TABLES, bind_refs=False, bind_backrefs=False):
        db.create_tables(TABLES, safe=False)
