"""Store a run's allocations in one transaction and tell web processes they changed."""

import time
from dataclasses import dataclass
from datetime import date

from peewee import Value

from core import testhooks
from core.db import bound, write_transaction
from core.models import Allocation, utcnow
from core.policy_models import AllocationReason
from core.serving import mark_changed
from scheduler.staging import StagedAllocation, StagedReason, staged, staged_experiments


@dataclass(frozen=True)
class ArmAllocation:
    variant_pk: int
    variant_id: str
    probability: float
    percentage: float


@dataclass(frozen=True)
class ExperimentAllocation:
    experiment_pk: int
    experiment_id: str
    seed: int
    arms: list[ArmAllocation]
    reason: str = "thompson"
    explanation: str = ""


@dataclass(frozen=True)
class PublishTimes:
    staging: float  # seconds staging the rows, before asking for the write lock
    locked: float  # seconds the write lock was held, from BEGIN IMMEDIATE to the commit


def publish_allocations(
    run_id: int, effective_date: date, results, before_commit=None
) -> PublishTimes:
    """Replace each experiment's allocation for the day; all or nothing.

    `results` may be a stream (read back from a spill file): it is staged first, without
    the write lock (scheduler/staging.py), then copied in one write transaction.
    before_commit() runs last inside it (the job records the run's success there, so the
    split and its run's status commit together).
    """
    started = time.monotonic()
    with staged(results):
        staged_at = time.monotonic()
        with write_transaction():
            locked = time.monotonic()
            replace_allocations(run_id, effective_date)
            replace_reasons(run_id, effective_date)
            mark_changed(staged_experiments())
            testhooks.pause("publish")
            if before_commit is not None:
                before_commit()
        committed = time.monotonic()
    return PublishTimes(staging=staged_at - started, locked=committed - locked)


def replace_allocations(run_id: int, effective_date: date) -> None:
    """The staged experiments' rows for the day, instead of what was there; in SQL alone."""
    day = bound(effective_date)
    (
        Allocation.delete()
        .where(Allocation.experiment.in_(staged_experiments()) & (Allocation.effective_date == day))
        .execute()
    )
    staged_rows = StagedAllocation.select(
        StagedAllocation.experiment_id,
        StagedAllocation.variant_id,
        Value(day),
        StagedAllocation.percentage,
        StagedAllocation.probability,
        StagedAllocation.seed,
        Value(run_id),
        Value(bound(utcnow())),
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
        StagedReason.experiment_id,
        Value(day),
        Value(run_id),
        StagedReason.reason,
        StagedReason.explanation,
    )
    fields = [
        AllocationReason.experiment,
        AllocationReason.effective_date,
        AllocationReason.run,
        AllocationReason.reason,
        AllocationReason.explanation,
    ]
    AllocationReason.insert_from(staged_rows, fields=fields).execute()
