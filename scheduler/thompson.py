"""Thompson Sampling for Beta-Bernoulli arms: counts in, probabilities out.

Pure functions: no database, no clock. The seed is derived from the experiment and the
effective date so that rerunning a day on the same data gives the same split.
"""

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np


@dataclass(frozen=True)
class Prior:
    alpha: float = 1.0
    beta: float = 1.0


def experiment_seed(experiment_id: str, effective_date: date) -> int:
    """A stable 63-bit seed per (experiment, day): fits a signed 64-bit column."""
    key = f"{experiment_id}|{effective_date.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def posterior(impressions, clicks, prior: Prior) -> tuple[np.ndarray, np.ndarray]:
    """Beta posterior parameters per arm."""
    impressions = np.asarray(impressions, dtype=np.float64)
    clicks = np.asarray(clicks, dtype=np.float64)
    return prior.alpha + clicks, prior.beta + impressions - clicks


def prob_best(alpha, beta, samples: int, seed: int) -> np.ndarray:
    """Share of joint posterior draws in which each arm has the largest sample."""
    rng = np.random.default_rng(seed)
    draws = rng.beta(alpha, beta, size=(samples, len(alpha)))
    wins = np.bincount(draws.argmax(axis=1), minlength=len(alpha))
    return wins / samples


def round_to_hundred(probabilities) -> list[float]:
    """Percentages with one decimal that sum to exactly 100.0 (largest remainder)."""
    tenths = np.asarray(probabilities, dtype=np.float64) * 1000
    floors = np.floor(tenths).astype(np.int64)
    short = 1000 - int(floors.sum())
    # Stable sort: equal remainders go to the earlier arm, so the result is deterministic.
    order = np.argsort(-(tenths - floors), kind="stable")
    floors[order[:short]] += 1
    return [int(t) / 10 for t in floors]


def equal_split(arms: int) -> list[float]:
    return round_to_hundred([1 / arms] * arms)
