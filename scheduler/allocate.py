"""From aggregated counts and each experiment's policy to the allocations the job publishes."""

from dataclasses import dataclass
from datetime import date

from core import testhooks
from core.counts import ExperimentTotals
from core.experiments import PolicyState
from core.policy import decide_experiment, round_to_hundred
from core.settings import Settings


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
    reason: str
    explanation: str
    assignment: str = "sticky"  # the policy's: how the published buckets follow the split
    buckets: str | None = None  # the ownership published with it (scheduler/publish.py)


def allocate(
    totals: ExperimentTotals, state: PolicyState, effective_date: date, settings: Settings
) -> ExperimentAllocation | None:
    """One experiment's split; None when every arm is archived (nothing to allocate).

    The winner's value-remaining pass runs only when the policy can roll a winner out: no
    other rule needs it."""
    testhooks.pause("compute")
    decision = decide_experiment(
        totals, state, effective_date, settings.sampling, state.policy.auto_rollout
    )
    if decision is None:
        return None
    split = decision.split
    arms = [
        ArmAllocation(a.variant_pk, a.variant_id, float(p), pct)
        for a, p, pct in zip(
            decision.arms, split.probabilities, round_to_hundred(split.shares), strict=True
        )
    ]
    return ExperimentAllocation(
        totals.experiment_pk,
        totals.experiment_id,
        decision.seed,
        arms,
        split.reason,
        split.explanation,
        state.policy.assignment,
    )
