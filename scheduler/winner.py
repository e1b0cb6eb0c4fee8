"""Joint posterior draws, P(best) from them, and the winner rule. Pure functions.

The winner rule is the "value remaining" rule of Google Analytics content experiments:
an arm wins when P(best) >= winner_probability and the 95th percentile, over the same
draws, of (theta_max - theta_leader) / theta_leader is below value_remaining.
"""

import math
from dataclasses import dataclass

import numpy as np

from scheduler.thompson import win_counts


@dataclass(frozen=True)
class WinnerCheck:
    leader: int  # index of the arm most likely to be best
    probability: float  # its P(best)
    value_remaining: float | None  # 95th percentile of the relative gain still possible
    declared: bool


def posterior_draws(alpha, beta, samples: int, seed: int) -> np.ndarray:
    """samples x arms draws; the same generator calls as thompson.prob_best, so the same
    seed gives the same P(best) (and the README example the same split)."""
    rng = np.random.default_rng(seed)
    return rng.beta(alpha, beta, size=(samples, len(alpha)))


def best_share(draws: np.ndarray) -> np.ndarray:
    return win_counts(draws) / draws.shape[0]


def row_max(draws: np.ndarray) -> np.ndarray:
    """draws.max(axis=1), column by column: the same values, about 15 times faster for a
    few arms, because numpy reduces along a short contiguous axis slowly (the nightly job
    does this for every experiment)."""
    best = draws[:, 0].copy()
    for arm in range(1, draws.shape[1]):
        np.maximum(best, draws[:, arm], out=best)
    return best


def percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) of a 1-d float array (its default linear method), bit for
    bit, without its generic machinery: a fifth of the cost of the draws otherwise."""
    virtual = (len(values) - 1) * (q / 100)
    low = math.floor(virtual)
    if low + 1 >= len(values):
        return float(np.max(values))
    gamma = virtual - low
    a, b = np.partition(values, (low, low + 1))[low : low + 2]
    # numpy's _lerp: from the nearer end, so that gamma 0 and 1 give a and b exactly.
    return float(a + (b - a) * gamma if gamma < 0.5 else b - (b - a) * (1 - gamma))


def value_remaining(draws: np.ndarray, leader: int) -> float:
    lead = np.maximum(draws[:, leader], np.finfo(np.float64).tiny)
    return percentile((row_max(draws) - lead) / lead, 95)


def check_winner(
    draws: np.ndarray, probabilities, winner_probability: float, remaining_limit: float
) -> WinnerCheck:
    leader = int(np.argmax(probabilities))
    probability = float(probabilities[leader])
    remaining = value_remaining(draws, leader)
    declared = probability >= winner_probability and remaining < remaining_limit
    return WinnerCheck(leader, probability, remaining, declared)


def leader_only(probabilities) -> WinnerCheck:
    """The leading arm without the value-remaining pass over the draws (never declared):
    for a run whose policy cannot roll out a winner, that pass would be wasted work."""
    leader = int(np.argmax(probabilities))
    return WinnerCheck(leader, float(probabilities[leader]), None, False)
