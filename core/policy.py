"""The allocation policy: counts and settings in, tomorrow's split and its reason out.

Pure functions: no database, no clock. The first rule that applies decides the split:
experiment archived, exploration days, impressions gate, winner rollout, Thompson Sampling
(with the floor when one is set). Every split comes with a machine-readable reason and a
sentence a person can read.
"""

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from core.beta import exact_prob_best
from core.sampling import (
    Prior,
    WinnerCheck,
    check_winner,
    experiment_seed,
    leader_only,
    posterior,
    posterior_draws,
    prob_best,
)
from core.settings import PolicySettings, SamplingSettings

# Every reason a published split can carry, in rule order; not_computed is what the web
# process serves for an experiment no run has computed yet.
REASONS = (
    "experiment_archived",
    "exploration",
    "gate_not_met",
    "winner_rollout",
    "floor_applied",
    "thompson",
)
NOT_COMPUTED = "not_computed"
NOT_COMPUTED_TEXT = "No run has computed this experiment yet: equal split."


@dataclass(frozen=True)
class ArmCounts:
    name: str
    counted_impressions: float  # as counted by the policy (windowed or discounted)
    counted_clicks: float
    impressions: int  # every day, unweighted: what the impressions gate looks at


@dataclass(frozen=True)
class Split:
    shares: np.ndarray  # fractions of traffic, summing to 1
    probabilities: np.ndarray  # P(arm is best)
    winner: WinnerCheck
    reason: str
    explanation: str


@dataclass(frozen=True)
class Decision:
    """An experiment's split for a day, computed the one way the job and the report share."""

    arms: list  # the active arms' totals (core.counts.ArmTotals), in the split's order
    seed: int
    split: Split


def next_effective_date(now: datetime, tz: ZoneInfo) -> date:
    """A run on local day D writes the allocation for D + 1."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(tz).date() + timedelta(days=1)


def day_number(effective_date: date, first_date: date) -> int:
    """1 on the experiment's first day of data; never below 1 (data dated ahead of a run)."""
    return max(1, (effective_date - first_date).days + 1)


def decide_experiment(
    totals, state, effective_date: date, sampling: SamplingSettings, measure_winner: bool = True
) -> Decision | None:
    """The split of one experiment's totals (core.counts) under its policy state
    (core.experiments) for effective_date; None when every arm is archived."""
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
        Prior(sampling.prior_alpha, sampling.prior_beta),
        sampling.samples,
        seed,
        measure_winner=measure_winner,
    )
    return Decision(active, seed, split)


def equal(arms: int) -> np.ndarray:
    return np.full(arms, 1 / arms)


def one_hot(arms: int, index: int) -> np.ndarray:
    weights = np.zeros(arms)
    weights[index] = 1.0
    return weights


def with_floor(weights, floor: float) -> np.ndarray:
    """p_i = f + (1 - K f) w_i: every arm gets at least f and the total stays 1."""
    weights = np.asarray(weights, dtype=np.float64)
    if len(weights) * floor >= 1:
        return equal(len(weights))
    return floor + (1 - len(weights) * floor) * weights


def probabilities_of(alpha, beta, draws, method: str) -> np.ndarray:
    if method == "exact":
        return exact_prob_best(alpha, beta)
    return prob_best(draws)


def decide(
    arms: list[ArmCounts],
    day: int,
    archived: bool,
    policy: PolicySettings,
    prior: Prior,
    samples: int,
    seed: int,
    measure_winner: bool = True,
) -> Split:
    """The split for an experiment's day number `day` (1 = its first day with data).

    measure_winner=False skips the winner's value-remaining pass (the nightly job does when
    auto_rollout is off: no rule then needs it, and it is a pass over all the draws)."""
    alpha, beta = posterior(
        [a.counted_impressions for a in arms], [a.counted_clicks for a in arms], prior
    )
    draws = posterior_draws(alpha, beta, samples, seed)
    probabilities = probabilities_of(alpha, beta, draws, policy.method)
    winner = (
        check_winner(draws, probabilities, policy.winner_probability, policy.value_remaining)
        if measure_winner
        else leader_only(probabilities)
    )
    reason, shares, text = choose_rule(arms, day, archived, policy, probabilities, winner)
    return Split(shares, probabilities, winner, reason, text + counting_note(policy))


def choose_rule(arms, day, archived, policy, probabilities, winner) -> tuple:
    """(reason, shares, sentence) from the first rule that applies."""
    k, floor = len(arms), policy.min_allocation
    if archived:
        return "experiment_archived", one_hot(k, winner.leader), archived_text(arms, winner)
    if day <= policy.exploration_days:
        text = f"Exploration day {day} of {policy.exploration_days}: equal split."
        return "exploration", equal(k), text
    below = [a for a in arms if a.impressions < policy.min_impressions]
    if below:
        return "gate_not_met", equal(k), gate_text(below, policy.min_impressions)
    if policy.auto_rollout and winner.declared:
        shares = with_floor(one_hot(k, winner.leader), floor)
        return "winner_rollout", shares, rollout_text(arms, winner, policy)
    if floor > 0 and k > 1:  # one arm gets everything whatever the floor
        return "floor_applied", with_floor(probabilities, floor), floor_text(k, floor)
    return "thompson", np.asarray(probabilities), THOMPSON_TEXT


THOMPSON_TEXT = "Thompson Sampling: each arm gets its probability of being best."


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f}%"


def archived_text(arms, winner: WinnerCheck) -> str:
    name = arms[winner.leader].name
    return f"Experiment archived: all traffic to {name!r}, the arm most likely to be best."


def gate_text(below: list[ArmCounts], needed: int) -> str:
    fewest = min(below, key=lambda a: a.impressions)
    others = f" ({len(below)} arms below)" if len(below) > 1 else ""
    return (
        f"Equal split until every arm has {needed} impressions: "
        f"{fewest.name!r} has {fewest.impressions}{others}."
    )


def rollout_text(arms, winner: WinnerCheck, policy: PolicySettings) -> str:
    text = (
        f"Winner rollout: {arms[winner.leader].name!r} is best with probability "
        f"{winner.probability:.3f} (>= {policy.winner_probability}) and value remaining "
        f"{percent(winner.value_remaining)} (< {percent(policy.value_remaining)})."
    )
    if policy.min_allocation > 0 and len(arms) * policy.min_allocation < 1:
        text += f" Every other arm keeps its floor of {percent(policy.min_allocation)}."
    return text


def floor_text(arms: int, floor: float) -> str:
    if arms * floor >= 1:
        return f"Floor of {percent(floor)} per arm does not fit {arms} arms: equal split."
    return (
        f"Thompson Sampling with a floor of {percent(floor)} per arm: each arm gets "
        f"{percent(floor)} plus {percent(1 - arms * floor)} times its probability of being best."
    )


def counting_note(policy: PolicySettings) -> str:
    if policy.window_days > 0:
        return f" Counts from the last {policy.window_days} days only."
    if policy.discount < 1:
        return f" Each day's counts weighted by {policy.discount}^(age in days)."
    return ""


def round_to_hundred(probabilities) -> list[float]:
    """Percentages with one decimal that sum to exactly 100.0 (largest remainder).

    Plain Python, not numpy: for a handful of arms numpy's per-call cost is most of the
    work, and the nightly job rounds every experiment."""
    tenths = [p * 1000 for p in np.asarray(probabilities, dtype=np.float64).tolist()]
    floors = [math.floor(t) for t in tenths]
    short = 1000 - sum(floors)
    # sorted() is stable: equal remainders go to the earlier arm, so the result is
    # deterministic.
    order = sorted(range(len(tenths)), key=lambda i: floors[i] - tenths[i])
    for i in order[:short]:
        floors[i] += 1
    return [t / 10 for t in floors]


def equal_split(arms: int) -> list[float]:
    """The equal split as published percentages."""
    return round_to_hundred(equal(arms))
