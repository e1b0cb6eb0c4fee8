"""From aggregated counts and each experiment's policy to the allocations the job publishes."""

from datetime import date

from core import testhooks
from core.settings import Settings
from scheduler.aggregate import ExperimentTotals
from scheduler.policy import ArmCounts, decide
from scheduler.policy_store import PolicyState
from scheduler.publish import ArmAllocation, ExperimentAllocation
from scheduler.thompson import Prior, experiment_seed, round_to_hundred


def allocate(
    totals: ExperimentTotals, state: PolicyState, effective_date: date, settings: Settings
) -> ExperimentAllocation | None:
    """One experiment's split; None when every arm is archived (nothing to allocate)."""
    testhooks.pause("compute")
    active = [a for a in totals.arms if a.variant_pk not in state.archived_variants]
    if not active:
        return None
    first = min(a.first_date for a in totals.arms)
    seed = experiment_seed(totals.experiment_id, effective_date)
    split = decide(
        [
            ArmCounts(a.variant_id, a.counted_impressions, a.counted_clicks, a.impressions)
            for a in active
        ],
        day_number(effective_date, first),
        state.archived,
        state.policy,
        Prior(settings.sampling.prior_alpha, settings.sampling.prior_beta),
        settings.sampling.samples,
        seed,
        measure_winner=state.policy.auto_rollout,
    )
    arms = [
        ArmAllocation(a.variant_pk, a.variant_id, float(p), pct)
        for a, p, pct in zip(
            active, split.probabilities, round_to_hundred(split.shares), strict=True
        )
    ]
    return ExperimentAllocation(
        totals.experiment_pk, totals.experiment_id, seed, arms, split.reason, split.explanation
    )


def day_number(effective_date: date, first_date: date) -> int:
    """1 on the experiment's first day of data; never below 1 (data dated ahead of a run)."""
    return max(1, (effective_date - first_date).days + 1)
