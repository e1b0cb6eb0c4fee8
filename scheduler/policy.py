"""The allocation policy: counts and settings in, tomorrow's split and its reason out.

Pure functions: no database, no clock. The first rule that applies decides the split:
experiment archived, exploration days, impressions gate, winner rollout, Thompson Sampling
(with the floor when one is set). Every split comes with a machine-readable reason and a
sentence a person can read.
"""

from dataclasses import dataclass

import numpy as np

from core.settings import PolicySettings
from scheduler.exact import exact_prob_best
from scheduler.thompson import Prior, posterior
from scheduler.winner import (
    WinnerCheck,
    best_share,
    check_winner,
    leader_only,
    posterior_draws,
)

REASONS = (
    "thompson",
    "floor_applied",
    "exploration",
    "gate_not_met",
    "winner_rollout",
    "experiment_archived",
)


@dataclass(frozen=True)
class ArmCounts:
    name: str
    impressions: float  # as counted by the policy (windowed or discounted)
    clicks: float
    total_impressions: int  # every day, unweighted: what the impressions gate looks at


@dataclass(frozen=True)
class Split:
    shares: np.ndarray  # fractions of traffic, summing to 1
    probabilities: np.ndarray  # P(arm is best)
    winner: WinnerCheck
    reason: str
    explanation: str


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
    return best_share(draws)


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
    auto_rollout is off: no rule then needs it, and it costs a tenth of the draws)."""
    alpha, beta = posterior([a.impressions for a in arms], [a.clicks for a in arms], prior)
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
    below = [a for a in arms if a.total_impressions < policy.min_impressions]
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
    fewest = min(below, key=lambda a: a.total_impressions)
    others = f" ({len(below)} arms below)" if len(below) > 1 else ""
    return (
        f"Equal split until every arm has {needed} impressions: "
        f"{fewest.name!r} has {fewest.total_impressions}{others}."
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
