"""The outlook: the coming days simulated under the experiment's own policy, to say when a
winner would be declared and how many clicks the bandit gains over an equal split.

Each of SIMULATIONS futures draws the arms' true rates once from their posterior on all
the data (the rates are assumed stationary), then lives day by day: the day's impressions
(the mean of the last TRAFFIC_DAYS days of data) go to the arms by the split in force
(multinomially, as units hashed to arms), clicks are binomial at the drawn rates, and the
night's run counts them as the policy does (window or discount), draws DRAWS joint samples
of the posteriors, applies the winner rule (P(best) and value remaining, as
core.sampling.check_winner) and picks the next split with core.policy.choose_rule, the
job's own rules. A future's winner day is the first whose run declares one.

Seeded by the experiment and the day, so a page shows the same outlook all day; the work
is bounded (SIMULATIONS x HORIZON_DAYS days at most, each DRAWS draws per arm) and each
result is cached by its inputs.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from core.policy import ArmCounts, choose_rule, day_number
from core.sampling import Prior, WinnerCheck, experiment_seed, posterior

SIMULATIONS = 100
HORIZON_DAYS = 90
GAIN_DAYS = 30
DRAWS = 1000
TRAFFIC_DAYS = 7


@dataclass(frozen=True)
class Start:
    """Where the futures start: the end of the experiment's last day of data (hashable,
    so that a result is cached by it)."""

    experiment_id: str
    last_day: date
    first_day: date
    names: tuple[str, ...]  # the active arms
    impressions: tuple[int, ...]  # every day, unweighted (the gate)
    clicks: tuple[int, ...]
    counted: tuple[tuple[float, float], ...]  # (impressions, clicks) as the policy counts
    recent: tuple[tuple[tuple[int, int], ...], ...]  # the last days, for a window
    shares: tuple[float, ...]  # the split in force
    daily_impressions: int
    policy: object  # PolicySettings (frozen, hashable)
    archived: bool
    prior: tuple[float, float]


@dataclass(frozen=True)
class Outlook:
    days_to_winner: tuple[int, int, int] | None  # (5%, median, 95%) after last_day
    declared_share: float  # of the futures that declare one within HORIZON_DAYS
    clicks_gained: tuple[float, float, float]  # over the next GAIN_DAYS: (5%, mean, 95%)
    winner_days: tuple[int | None, ...]  # per future: its winner day, None past the horizon
    simulations: int
    horizon: int
    daily_impressions: int


def prior_rates(start: Start, rng, simulations: int) -> np.ndarray:
    """simulations x arms true rates, drawn from the posterior of all the data."""
    alpha, beta = posterior(start.impressions, start.clicks, Prior(*start.prior))
    return rng.beta(alpha, beta, size=(simulations, len(start.names)))


CACHE_SIZE = 256
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def cached(start: Start) -> Outlook | None:
    with _cache_lock:
        return _cache.get(start)


def outlook(start: Start) -> Outlook:
    """The outlook from `start` with rates drawn from the posterior, cached by `start`
    (new data or settings make a new `start`); seeded, so a recomputation is the same."""
    found = cached(start)
    if found is None:
        rng = np.random.default_rng(experiment_seed(start.experiment_id, start.last_day))
        found = simulate(start, prior_rates(start, rng, SIMULATIONS), rng)
        with _cache_lock:
            _cache[start] = found
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return found


@dataclass
class Futures:
    """The state of every future at once: arrays of simulations x arms."""

    impressions: np.ndarray
    counted: np.ndarray  # simulations x arms x (impressions, clicks)
    recent: list  # the days inside the window, oldest first
    shares: np.ndarray

    @classmethod
    def begin(cls, start: Start, simulations: int) -> "Futures":
        def spread(values, dtype):
            return np.tile(np.asarray(values, dtype=dtype), (simulations, *([1] * np.ndim(values))))

        return cls(
            spread(start.impressions, np.int64),
            spread(start.counted, float),
            [spread(day, float) for day in start.recent],
            spread(start.shares, float),
        )

    def subset(self, keep: np.ndarray) -> "Futures":
        return Futures(
            self.impressions[keep],
            self.counted[keep],
            [day[keep] for day in self.recent],
            self.shares[keep],
        )

    def add_day(self, shown: np.ndarray, clicks: np.ndarray, policy) -> None:
        day = np.stack([shown, clicks], axis=-1).astype(float)
        self.impressions += shown
        if policy.window_days > 0:
            self.recent = [*self.recent, day][-policy.window_days :]
            self.counted = np.sum(self.recent, axis=0)
        elif policy.discount < 1:
            self.counted = policy.discount * self.counted + day
        else:
            self.counted = self.counted + day


def simulate(start: Start, rates: np.ndarray, rng, horizon: int = HORIZON_DAYS) -> Outlook:
    """Live the futures (one per row of `rates`) for GAIN_DAYS, then those still without
    a winner until they declare one or `horizon` days have passed."""
    futures = Futures.begin(start, len(rates))
    winner_day = np.full(len(rates), -1)
    gained = np.zeros(len(rates))
    alive = np.arange(len(rates))  # the futures still simulated
    for day in range(1, horizon + 1):
        shown = rng.multinomial(start.daily_impressions, futures.shares)
        clicks = rng.binomial(shown, rates[alive])
        if day <= GAIN_DAYS:
            even = start.daily_impressions / len(start.names)
            gained += np.sum((shown - even) * rates, axis=1)
        futures.add_day(shown, clicks, start.policy)
        declared = night(start, futures, day, rng)
        winner_day[alive[declared & (winner_day[alive] < 0)]] = day
        if day >= GAIN_DAYS:
            keep = winner_day[alive] < 0
            alive, futures = alive[keep], futures.subset(keep)
            if not len(alive):
                break
    return summarize(start, winner_day, gained, horizon)


def night(start: Start, futures: Futures, day: int, rng) -> np.ndarray:
    """The run at the end of simulated `day`: every future's winner check and next split."""
    probabilities, checks = winner_checks(start, futures.counted, rng)
    number = day_number(start.last_day + timedelta(days=day + 1), start.first_day)
    for i, check in enumerate(checks):
        counts = [
            ArmCounts(n, 0.0, 0.0, int(futures.impressions[i, k]))
            for k, n in enumerate(start.names)
        ]
        rule = choose_rule(counts, number, start.archived, start.policy, probabilities[i], check)
        futures.shares[i] = rule[1]
    return np.array([check.declared for check in checks], dtype=bool)


def winner_checks(start: Start, counted: np.ndarray, rng) -> tuple[np.ndarray, list]:
    """P(best) per future and arm from DRAWS joint draws, and each future's WinnerCheck
    (core.sampling.check_winner's rule, for all the futures at once)."""
    policy, futures, arms = start.policy, len(counted), len(start.names)
    alpha = start.prior[0] + counted[:, :, 1]
    beta = start.prior[1] + counted[:, :, 0] - counted[:, :, 1]
    draws = rng.beta(alpha[:, None, :], beta[:, None, :], size=(futures, DRAWS, arms))
    best = draws.argmax(axis=2) + arms * np.arange(futures)[:, None]
    wins = np.bincount(best.ravel(), minlength=arms * futures).reshape(futures, arms)
    probabilities = wins / DRAWS
    leader = probabilities.argmax(axis=1)
    top = probabilities[np.arange(futures), leader]
    remaining = value_remaining(draws, leader, top >= policy.winner_probability)
    declared = (top >= policy.winner_probability) & (remaining < policy.value_remaining)
    checks = [
        WinnerCheck(int(leader[i]), float(top[i]), float(remaining[i]), bool(declared[i]))
        for i in range(futures)
    ]
    return probabilities, checks


def value_remaining(draws: np.ndarray, leader: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """core.sampling.value_remaining for the futures whose leader has a winner's P(best)
    (infinite for the others, which cannot win tonight whatever it is)."""
    found = np.full(len(leader), np.inf)
    rows = np.flatnonzero(candidates)
    if len(rows):
        picked = draws[rows]
        lead = np.maximum(picked[np.arange(len(rows)), :, leader[rows]], np.finfo(np.float64).tiny)
        found[rows] = np.percentile((picked.max(axis=2) - lead) / lead, 95, axis=1)
    return found


def summarize(start: Start, winner_day: np.ndarray, gained: np.ndarray, horizon: int) -> Outlook:
    found = winner_day[winner_day > 0]
    share = len(found) / len(winner_day)
    days = None
    if share >= 0.5:
        # Futures past the horizon count as later than every one inside it.
        padded = np.where(winner_day > 0, winner_day, horizon + 1)
        low, mid, high = np.percentile(padded, [5, 50, 95], method="inverted_cdf")
        days = (int(low), int(mid), int(high))
    return Outlook(
        days,
        share,
        (float(np.percentile(gained, 5)), float(gained.mean()), float(np.percentile(gained, 95))),
        tuple(int(d) if d > 0 else None for d in winner_day),
        len(winner_day),
        horizon,
        start.daily_impressions,
    )
