"""How much each day's counts weigh, as one SQL expression for every experiment at once.

Each experiment's window_days / discount comes from its settings row, else the config
default, so the nightly aggregation stays a single GROUP BY (no per-experiment queries).
"""

from datetime import date

from peewee import Case, fn

from core.db import days_between
from core.models import DailyMetric
from core.policy_models import ExperimentPolicy
from core.settings import PolicySettings


def age_in_days(as_of: date):
    """Days from the metric's date to `as_of`; a day after `as_of` counts as age 0."""
    age = days_between(as_of, DailyMetric.date)
    return Case(None, [(age < 0, 0)], age)


def day_weight(as_of: date, defaults: PolicySettings):
    """1 for a counted day, 0 outside the window, discount^age when discounting."""
    window = fn.COALESCE(ExperimentPolicy.window_days, defaults.window_days)
    discount = fn.COALESCE(ExperimentPolicy.discount, defaults.discount)
    age = age_in_days(as_of)
    return Case(
        None,
        [
            (window > 0, Case(None, [(age < window, 1.0)], 0.0)),
            (discount < 1, fn.power(discount, age)),
        ],
        1.0,
    )
