"""Thompson Sampling for Beta-Bernoulli arms: the posterior, the joint draws, P(best) and the
winner rule. The one production path: the nightly job and the experiment report call these.

Pure functions: no database, no clock. The seed is derived from the experiment and the
effective date so that rerunning a day on the same data gives the same split.

The winner rule is the "value remaining" rule of Google Analytics content experiments:
an arm wins when P(best) >= winner_probability and the 95th percentile, over the same
draws, of (theta_max - theta_leader) / theta_leader is below value_remaining.
"""

import hashlib
import math
from dataclasses import dataclass
from datetime import date

import numpy as np


@dataclass(frozen=True)
class Prior:
    alpha: float = 1.0
    beta: float = 1.0


@dataclass(frozen=True)
class WinnerCheck:
    leader: int  # index of the arm most likely to be best
    probability: float  # its P(best)
    value_remaining: float | None  # 95th percentile of the relative gain still possible
    declared: bool


def experiment_seed(experiment_id: str, effective_date: date) -> int:
    """A stable 63-bit seed per (experiment, day): fits a signed 64-bit column."""
    key = f"{experiment_id}|{effective_date.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def posterior(impressions, clicks, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """Beta posterior parameters per arm."""
    impressions = np.asarray(impressions, dtype=np.float64)
    clicks = np.asarray(clicks, dtype=np.float64)
    return prior.alpha + clicks, prior.beta + impressions - clicks


def posterior_draws(alpha, beta, samples: int, seed: int) -> np.ndarray:
    """samples x arms joint draws from the posteriors, seeded."""
    rng = np.random.default_rng(seed)
    return rng.beta(alpha, beta, size=(samples, len(alpha)))


def prob_best(draws: np.ndarray) -> np.ndarray:
    """Share of the joint draws in which each arm has the largest sample."""
    return win_counts(draws) / draws.shape[0]


COLUMN_WISE_ARMS = 6  # up to here comparing whole columns beats argmax along the rows


def win_counts(draws: np.ndarray) -> np.ndarray:
    """How many rows of a samples x arms array each arm holds the largest value in, the
    first arm winning a tie: np.bincount(draws.argmax(axis=1)), the same counts.

    argmax along a short row pays numpy's overhead once per row; for a few arms, comparing
    whole columns pays it once per arm. Beta draws practically never tie; when two do,
    argmax settles the counts.
    """
    samples, arms = draws.shape
    if arms == 1:
        return np.array([samples])
    if arms == 2:
        second = int(np.count_nonzero(draws[:, 1] > draws[:, 0]))
        return np.array([samples - second, second])
    if arms <= COLUMN_WISE_ARMS:
        columns = draws.T.copy()  # one contiguous row per arm
        best = np.maximum(columns[0], columns[1])
        for column in columns[2:]:
            np.maximum(best, column, out=best)
        counts = [np.count_nonzero(column == best) for column in columns]
        if sum(counts) == samples:  # every row has exactly one largest value
            return np.array(counts)
    return np.bincount(draws.argmax(axis=1), minlength=arms)


def row_max(draws: np.ndarray) -> np.ndarray:
    """draws.max(axis=1), column by column: the same values, faster for a few arms,
    because numpy reduces along a short contiguous axis slowly (the nightly job does this
    for every experiment)."""
    best = draws[:, 0].copy()
    for arm in range(1, draws.shape[1]):
        np.maximum(best, draws[:, arm], out=best)
    return best


def percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) of a 1-d float array (its default linear method), bit for
    bit, without its generic machinery, which costs more than the one partition it needs."""
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
