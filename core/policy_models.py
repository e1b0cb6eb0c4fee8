"""Tables for the allocation policy: per-experiment settings, archived arms, and why each
stored split is what it is. Created by their own migration step (core/migrations.py)."""

from peewee import (
    BooleanField,
    CharField,
    DateField,
    DateTimeField,
    FloatField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from core.models import BaseModel, Experiment, Run, Variant, utcnow


class ExperimentPolicy(BaseModel):
    """One row per experiment that has overrides or is archived. NULL: the config default."""

    experiment = ForeignKeyField(Experiment, unique=True, on_delete="CASCADE")
    min_allocation = FloatField(null=True)
    min_impressions = IntegerField(null=True)
    exploration_days = IntegerField(null=True)
    winner_probability = FloatField(null=True)
    value_remaining = FloatField(null=True)
    auto_rollout = BooleanField(null=True)
    window_days = IntegerField(null=True)
    discount = FloatField(null=True)
    method = CharField(null=True)
    archived_at = DateTimeField(null=True)
    updated_at = DateTimeField(default=utcnow)


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

    class Meta:
        indexes = ((("experiment", "effective_date"), True),)


POLICY_MODELS = [ExperimentPolicy, ArchivedVariant, AllocationReason]
POLICY_KEYS = (
    "min_allocation",
    "min_impressions",
    "exploration_days",
    "winner_probability",
    "value_remaining",
    "auto_rollout",
    "window_days",
    "discount",
    "method",
)
