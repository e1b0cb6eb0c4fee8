"""The schema: every table, as Peewee models. Times are naive UTC; dates are calendar dates in
the configured zone. The schema changes only through a numbered step in core/migrations/."""

from datetime import UTC, datetime

from peewee import (
    SQL,
    BigIntegerField,
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    ModelIndex,
    TextField,
)

from core.db import database
from core.settings import POLICY

ID_MAX_LENGTH = 128


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Counter(BaseModel):
    """Named counters. 'serving' is bumped by every change to what GET /allocation serves."""

    name = CharField(primary_key=True)
    value = BigIntegerField(default=0)


class Experiment(BaseModel):
    name = CharField(max_length=ID_MAX_LENGTH, unique=True)
    created_at = DateTimeField(default=utcnow)
    # The serving counter's value when this experiment's served allocation last changed;
    # web processes reload only the experiments whose version is newer than they have.
    version = BigIntegerField(default=0, index=True)


class Variant(BaseModel):
    experiment = ForeignKeyField(Experiment, backref="variants", on_delete="CASCADE")
    name = CharField(max_length=ID_MAX_LENGTH)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        # (id, experiment): added by migration 8, what daily_metric's foreign key refers to.
        indexes = ((("experiment", "name"), True), (("id", "experiment"), True))


# Added by migration 8: daily_metric's one foreign key, to its (variant, experiment) pair.
# It holds what the two single ones did (the variant exists, and through the variant's own
# foreign key, its experiment), and also that the metric's experiment is its variant's;
# one check per inserted row instead of two.
ARM_FOREIGN_KEY = SQL(
    'FOREIGN KEY ("variant_id", "experiment_id") REFERENCES "variant" ("id", "experiment_id")'
    " ON DELETE CASCADE"
)


class DailyMetric(BaseModel):
    # _deferred: no foreign key of their own (ARM_FOREIGN_KEY). No index of their own
    # either (migration 8 drops the old ones): the unique index below starts with
    # experiment, and serves the key's cascade (variant_id = ? AND experiment_id = ?) too.
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE", index=False, _deferred=True)
    variant = ForeignKeyField(Variant, on_delete="CASCADE", index=False, _deferred=True)
    date = DateField()
    impressions = BigIntegerField()
    clicks = BigIntegerField()
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("experiment", "date", "variant"), True),)
        constraints = (ARM_FOREIGN_KEY,)


class Run(BaseModel):
    trigger = CharField()  # nightly, catch_up, manual
    effective_date = DateField()
    experiment_filter = CharField(null=True)
    started_at = DateTimeField(default=utcnow)
    finished_at = DateTimeField(null=True)
    status = CharField(default="running")  # running, success, failed, cancelled
    experiments_processed = IntegerField(default=0)
    error = TextField(null=True)
    # Added by migration 3. The row is also the run's lease: a live process renews
    # lease_until; a 'running' row whose lease ran out belongs to a process that died.
    scheduled_for = DateTimeField(null=True, index=True)  # the nightly fire time it is for
    lease_until = DateTimeField(null=True)
    holder = CharField(null=True)  # host:pid of the process running it
    # Added by migration 5: {"compute": s, "staging": s, "publish_lock": s}, as JSON.
    phase_seconds = TextField(null=True)


# Added by migration 7: one live (running or successful) run per scheduled time, enforced
# by the database, as clocks on several hosts need.
Run.add_index(
    ModelIndex(
        Run,
        (Run.scheduled_for,),
        unique=True,
        where=SQL("status IN ('running', 'success')"),
        name="run_one_live_per_scheduled_time",
    )
)


class Allocation(BaseModel):
    # No index of its own: the unique index below starts with it (migration 4 drops the old one).
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE", index=False)
    variant = ForeignKeyField(Variant, on_delete="CASCADE")
    effective_date = DateField()
    percentage = DoubleField()
    probability = DoubleField()
    seed = BigIntegerField()
    run = ForeignKeyField(Run)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("experiment", "effective_date", "variant"), True),)


class SchemaVersion(BaseModel):
    version = IntegerField()


# Types that hold every value the API accepts on any engine: 64-bit integers, 8-byte floats
# (on SQLite INTEGER and REAL either way).
COLUMN_TYPES = {bool: BooleanField, int: BigIntegerField, float: DoubleField, str: CharField}


# Policy keys added by a later migration step: their columns come after updated_at.
LATER_POLICY_KEYS = ("assignment",)  # step 5


def policy_columns(later: bool = False) -> dict:
    """A nullable column per policy key, typed from its default: the first release's keys,
    or (later=True) those added since."""
    return {
        s.key: COLUMN_TYPES[s.kind](null=True)
        for s in POLICY
        if (s.key in LATER_POLICY_KEYS) == later
    }


class ExperimentPolicy(BaseModel):
    """One row per experiment that has overrides or is archived. NULL: the config default."""

    experiment = ForeignKeyField(Experiment, unique=True, on_delete="CASCADE")
    locals().update(policy_columns())  # one per policy key, in the table's order
    archived_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)
    locals().update(policy_columns(later=True))


class ArchivedVariant(BaseModel):
    """An arm that is no longer allocated; its metrics and allocation history stay."""

    variant = ForeignKeyField(Variant, unique=True, on_delete="CASCADE")
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE")
    archived_at = DateTimeField(default=utcnow)


class AllocationReason(BaseModel):
    """Why an experiment's split for a day is what it is: a code and a sentence."""

    # No index of its own: the unique index below starts with it (migration 4 drops the old one).
    experiment = ForeignKeyField(Experiment, on_delete="CASCADE", index=False)
    effective_date = DateField()
    run = ForeignKeyField(Run)
    reason = CharField()
    explanation = TextField()
    # Added by migration 5: which arm owns which buckets that day (core/assign.py);
    # NULL for splits published before.
    buckets = TextField(null=True)

    class Meta:
        indexes = ((("experiment", "effective_date"), True),)


POLICY_KEYS = tuple(s.key for s in POLICY)


ALL_MODELS = [
    Counter,
    Experiment,
    Variant,
    DailyMetric,
    Run,
    Allocation,
    SchemaVersion,
    ExperimentPolicy,
    ArchivedVariant,
    AllocationReason,
]
