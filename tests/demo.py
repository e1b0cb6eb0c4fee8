"""A seeded experiment lived day by day: each day's traffic follows the split the service
published the night before, clicks are binomial at fixed rates, and the nightly job runs
at 23:50 of each day (stamping its rows from that time). For the browser tests, the
screenshots and bench/pages.py; call with the database open."""

from datetime import UTC, date, datetime, time, timedelta

import numpy as np

from core.experiments import find_experiment
from core.splits import latest_split
from tests.helpers import load, run_at


def shares_now(experiment_id: str, arms: list[str]) -> dict[str, float]:
    split = latest_split(find_experiment(experiment_id))
    if split is None:
        return {arm: 1 / len(arms) for arm in arms}
    return {a["variant_id"]: a["percentage"] / 100 for a in split["allocations"]}


def live_days(settings, experiment_id: str, rates: dict, first: date, days: int, daily=3000):
    """Post `days` days from `first` and run the nightly job for this experiment after
    each; returns the runs."""
    rng = np.random.default_rng(7)
    arms = list(rates)
    summaries = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        shares = shares_now(experiment_id, arms) if offset else dict.fromkeys(arms, 1 / len(arms))
        rows = []
        for arm, rate in rates.items():
            shown = round(daily * shares.get(arm, 0.0))
            rows.append((experiment_id, day, arm, shown, int(rng.binomial(shown, rate))))
        load(*rows)
        at = datetime.combine(day, time(23, 50), UTC)
        summaries.append(run_at(at, settings, experiment_id=experiment_id))
    return summaries
