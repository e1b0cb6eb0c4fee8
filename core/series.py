"""An experiment day by day: the one source of GET /experiments/{id}/series, the metrics
it was posted, and the experiment page's charts.

For each day from the experiment's first day of data to its last, and each arm that had
joined by then (its first day of data): the counts posted that day, the running totals,
the totals as the policy counts them on that day (window or discount as set now, ages
from that day, as the run on that day counts them), the posterior rate with its 95%
credible interval, P(best) among the arms active that day, and the share of the split
routers were served that day (core.splits.served_on) with its reason and run.

P(best) here is by numerical integration on a coarser grid than the job's (no sampling
noise, a year of days in milliseconds): a chart's value, not the published one, which the
split's run stored.
"""

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from peewee import fn

from core.beta import beta_mean, credible_interval, exact_prob_best
from core.db import as_utc, database
from core.experiments import find_experiment, load_state
from core.sampling import Prior, posterior
from core.schema import Allocation, ArchivedVariant, DailyMetric, Experiment, Variant
from core.settings import PolicySettings, Settings
from core.split_history import SplitDay, served_splits, split_history
from core.splits import publish_times

# P(best) grid over all arms: the grid follows each posterior, so even 101 points an arm
# are within 1e-4 of the job's 4001.
SERIES_GRID_POINTS = 600
CACHE_SIZE = 64  # experiments' series kept (a year of 3 arms is about a MB)
_cache: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Arm:
    pk: int
    variant_id: str
    joined: date  # first day of data
    archived_from: date | None  # local day it was archived on (None: active now)

    def active_on(self, day: date) -> bool:
        return self.archived_from is None or day < self.archived_from


@dataclass(frozen=True)
class ArmDay:
    variant_id: str
    impressions: int
    clicks: int
    cumulative_impressions: int
    cumulative_clicks: int
    counted_impressions: float
    counted_clicks: float
    rate: float
    interval_95: tuple[float, float]
    probability_best: float | None  # None for an arm archived by that day
    share: float | None  # of the split served that day; None if it was not in it
    active: bool


@dataclass(frozen=True)
class Day:
    date: date
    split: SplitDay | None
    arms: list[ArmDay]


@dataclass(frozen=True)
class Series:
    experiment_id: str
    arms: list[Arm]
    days: list[Day]
    history: list[dict]  # every stored split, oldest first (core.splits.allocation_series)


def posted_rows(experiment: Experiment) -> list[tuple]:
    """(date, variant pk, variant id, impressions, clicks, updated_at), by day then arm."""
    return list(
        DailyMetric.select(
            DailyMetric.date,
            DailyMetric.variant,
            Variant.name,
            DailyMetric.impressions,
            DailyMetric.clicks,
            DailyMetric.updated_at,
        )
        .join(Variant)
        .where(DailyMetric.experiment == experiment)
        .order_by(DailyMetric.date, DailyMetric.variant)
        .tuples()
    )


def metrics_rows(experiment_id: str) -> list[dict]:
    """The daily rows as posted: what GET /experiments/{id}/metrics returns."""
    return [
        {
            "date": day,
            "variant_id": name,
            "impressions": impressions,
            "clicks": clicks,
            "updated_at": as_utc(updated),
        }
        for day, _, name, impressions, clicks, updated in posted_rows(
            find_experiment(experiment_id)
        )
    ]


def local_day(stored: datetime, tz: ZoneInfo) -> date:
    return as_utc(stored).astimezone(tz).date()


def arms_of(experiment: Experiment, rows: list[tuple], tz: ZoneInfo) -> list[Arm]:
    joined: dict[int, date] = {}
    for day, pk, *_ in rows:
        joined.setdefault(pk, day)
    archived = dict(
        ArchivedVariant.select(ArchivedVariant.variant, ArchivedVariant.archived_at)
        .where(ArchivedVariant.experiment == experiment)
        .tuples()
    )
    names = {pk: name for _, pk, name, *_ in rows}
    return [
        Arm(pk, names[pk], joined[pk], local_day(archived[pk], tz) if pk in archived else None)
        for pk in sorted(joined)
    ]


def daily_matrix(rows: list[tuple], arms: list[Arm], first: date, days: int) -> np.ndarray:
    """days x arms x (impressions, clicks), zero where nothing was posted."""
    column = {arm.pk: k for k, arm in enumerate(arms)}
    counts = np.zeros((days, len(arms), 2), dtype=np.int64)
    for day, pk, _, impressions, clicks, _ in rows:
        counts[(day - first).days, column[pk]] = (impressions, clicks)
    return counts


def counted(daily: np.ndarray, policy: PolicySettings) -> np.ndarray:
    """Each day's totals as the policy counts them on that day (core.counts.day_weight):
    the last window_days days, or every day weighted by discount^age."""
    if policy.window_days > 0:
        totals = np.cumsum(daily, axis=0, dtype=np.float64)
        shifted = np.zeros_like(totals)
        shifted[policy.window_days :] = totals[: -policy.window_days]
        return totals - shifted
    if policy.discount < 1:
        result = np.zeros(daily.shape, dtype=np.float64)
        for day in range(len(daily)):
            result[day] = daily[day] + (policy.discount * result[day - 1] if day else 0)
        return result
    return np.cumsum(daily, axis=0, dtype=np.float64)


def probabilities_best(alpha: np.ndarray, beta: np.ndarray, active: list[bool]) -> list:
    """P(best) among the active arms (None for the others)."""
    picked = [k for k, on in enumerate(active) if on]
    found: list = [None] * len(active)
    if len(picked) == 1:
        found[picked[0]] = 1.0
    elif picked:
        points = max(101, SERIES_GRID_POINTS // len(picked))
        values = exact_prob_best(alpha[picked], beta[picked], points)
        for k, value in zip(picked, values.tolist(), strict=True):
            found[k] = value
    return found


def experiment_series(experiment_id: str, settings: Settings) -> Series:
    """The series of an experiment under its policy in effect now (call with a connection):
    from the cache while nothing it depends on has changed (see `version`)."""
    experiment = find_experiment(experiment_id)
    policy = load_policy(experiment, settings)
    key = (database.database, experiment.id, version(experiment), policy, settings.sampling)
    key += (settings.tz.key,)
    with _cache_lock:
        found = _cache.get(key)
    if found is None:
        found = build_series(experiment, policy, settings)
        with _cache_lock:
            _cache[key] = found
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return found


def version(experiment: Experiment) -> tuple:
    """What the series is computed from, in three aggregate queries: the posted rows (a
    repost changes a count or its stamp), the stored splits (a republish writes new rows
    and a new run) and the archived arms."""
    posted = DailyMetric.select(
        fn.COUNT(DailyMetric.id),
        fn.MAX(DailyMetric.updated_at),
        fn.SUM(DailyMetric.impressions),
        fn.SUM(DailyMetric.clicks),
    ).where(DailyMetric.experiment == experiment)
    splits = Allocation.select(
        fn.COUNT(Allocation.id), fn.MAX(Allocation.created_at), fn.MAX(Allocation.run)
    ).where(Allocation.experiment == experiment)
    archived = ArchivedVariant.select(
        fn.COUNT(ArchivedVariant.id), fn.MAX(ArchivedVariant.archived_at)
    ).where(ArchivedVariant.experiment == experiment)
    return tuple(tuple(query.tuples().get()) for query in (posted, splits, archived))


def build_series(experiment: Experiment, policy: PolicySettings, settings: Settings) -> Series:
    rows = posted_rows(experiment)
    published = publish_times(experiment)
    history = split_history(experiment, published)
    if not rows:
        return Series(experiment.name, [], [], history)
    arms = arms_of(experiment, rows, settings.tz)
    first, last = rows[0][0], rows[-1][0]
    day_list = [first + timedelta(days=d) for d in range((last - first).days + 1)]
    daily = daily_matrix(rows, arms, first, len(day_list))
    counts = Counts(daily, np.cumsum(daily, axis=0), counted(daily, policy))
    splits = served_splits(history, published, day_list, settings.tz)
    prior = Prior(settings.sampling.prior_alpha, settings.sampling.prior_beta)
    days = [day_of(i, day, arms, counts, splits.get(day), prior) for i, day in enumerate(day_list)]
    return Series(experiment.name, arms, days, history)


def load_policy(experiment: Experiment, settings: Settings) -> PolicySettings:
    return load_state(experiment.id, settings.policy).policy


@dataclass(frozen=True)
class Counts:
    daily: np.ndarray  # days x arms x (impressions, clicks)
    cumulative: np.ndarray
    counted: np.ndarray  # as the policy counts them on each day


def day_of(i: int, day: date, arms: list[Arm], counts: Counts, served, prior: Prior) -> Day:
    weighted = counts.counted[i]
    alpha, beta = posterior(weighted[:, 0], weighted[:, 1], prior)
    present = [arm.joined <= day for arm in arms]
    active = [on and arm.active_on(day) for on, arm in zip(present, arms, strict=True)]
    best = probabilities_best(alpha, beta, active)
    split, shares = served or (None, {})
    return Day(
        day,
        split,
        [
            ArmDay(
                arm.variant_id,
                *(int(v) for v in counts.daily[i, k]),
                *(int(v) for v in counts.cumulative[i, k]),
                *(float(v) for v in weighted[k]),
                beta_mean(alpha[k], beta[k]),
                credible_interval(alpha[k], beta[k]),
                best[k],
                shares.get(arm.variant_id),
                active[k],
            )
            for k, arm in enumerate(arms)
            if present[k]
        ],
    )


def series_json(series: Series) -> dict:
    """The series as GET /experiments/{id}/series returns it."""
    return {
        "experiment_id": series.experiment_id,
        "arms": [
            {"variant_id": a.variant_id, "joined": a.joined, "archived_from": a.archived_from}
            for a in series.arms
        ],
        "days": [
            {
                "date": d.date,
                "split": d.split and dataclasses.asdict(d.split),
                "arms": [dataclasses.asdict(a) for a in d.arms],
            }
            for d in series.days
        ],
    }
