"""Bucket ownership as the job publishes it: each experiment's runs for the day, computed
from the ownership stored for its previous day (core.assign.sticky_step) and stored with
the split's reason, so that it follows deterministically from what is stored."""

from datetime import date

from peewee import fn

from core.assign import bucket_counts, cumulative, decode, encode, sticky_step
from core.db import bound, database
from core.schema import AllocationReason, Variant


def previous_ownership(experiment_pks: list[int], effective_date: date) -> dict[int, str]:
    """Each experiment's stored ownership on its latest day before effective_date."""
    inner = AllocationReason.alias()
    before = (
        inner.select(fn.MAX(inner.effective_date))
        .where(inner.experiment == AllocationReason.experiment)
        .where(inner.effective_date < bound(effective_date))
    )
    query = (
        AllocationReason.select(AllocationReason.experiment, AllocationReason.buckets)
        .where(AllocationReason.experiment.in_(experiment_pks))
        .where(AllocationReason.effective_date == before)
    )
    return dict(database.execute(query))


def arm_positions(experiment_pks: list[int]) -> dict[int, tuple[int, int]]:
    """variant pk -> (its position in its experiment's order of joining, arms in it)."""
    rows = list(
        database.execute(
            Variant.select(Variant.experiment, Variant.id)
            .where(Variant.experiment.in_(experiment_pks))
            .order_by(Variant.experiment, Variant.id)
        )
    )
    sizes: dict[int, int] = {}
    for experiment, _ in rows:
        sizes[experiment] = sizes.get(experiment, 0) + 1
    positions, seen = {}, {}
    for experiment, variant in rows:
        seen[experiment] = seen.get(experiment, -1) + 1
        positions[variant] = (seen[experiment], sizes[experiment])
    return positions


def ownership(result, positions: dict, previous: str | None) -> str:
    """The stored text of one experiment's ownership for the day (ExperimentAllocation)."""
    arms = positions[result.arms[0].variant_pk][1]
    counts = [0] * arms
    for arm, count in zip(
        result.arms, bucket_counts([a.percentage for a in result.arms]), strict=True
    ):
        counts[positions[arm.variant_pk][0]] = count
    if result.assignment == "daily":
        return encode("daily", cumulative(counts))
    _, runs = decode(previous)
    return encode("sticky", sticky_step(runs, counts))


def ownership_of(results: list, effective_date: date) -> list[str]:
    """The ownership text of each result of a batch, in order."""
    pks = [r.experiment_pk for r in results]
    positions, previous = arm_positions(pks), previous_ownership(pks, effective_date)
    return [ownership(r, positions, previous.get(r.experiment_pk)) for r in results]
