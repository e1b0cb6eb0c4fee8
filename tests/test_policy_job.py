"""The nightly job with policies: weighted counts in the SQL aggregation."""

import dataclasses
from datetime import date

import pytest

from core.counts import aggregate_counts
from core.experiments import save_overrides
from core.policy import day_number
from core.schema import AllocationReason, Experiment
from scheduler.job import run_job
from tests.helpers import load, utc

AS_OF = date(2025, 12, 22)


def counted(experiment="e1", defaults=None):
    totals = aggregate_counts(experiment, as_of=AS_OF, defaults=defaults)
    return [(a.variant_id, a.counted_impressions, a.counted_clicks) for a in totals[0].arms]


def with_policy(settings, **changes):
    return dataclasses.replace(settings, policy=dataclasses.replace(settings.policy, **changes))


def three_days():
    load(
        ("e1", date(2025, 12, 10), "a", 1000, 100),
        ("e1", date(2025, 12, 21), "a", 100, 10),
        ("e1", date(2025, 12, 22), "a", 10, 1),
    )


def test_without_window_or_discount_every_day_counts_fully(db, settings):
    three_days()
    assert counted(defaults=settings.policy) == [("a", 1110.0, 111.0)]


def test_window_excludes_days_older_than_n(db, settings):
    three_days()
    assert counted(defaults=with_policy(settings, window_days=2).policy) == [("a", 110.0, 11.0)]


def test_discount_weights_each_day_by_its_age(db, settings):
    three_days()
    [(_, impressions, clicks)] = counted(defaults=with_policy(settings, discount=0.5).policy)
    assert impressions == pytest.approx(10 + 100 * 0.5 + 1000 * 0.5**12)
    assert clicks == pytest.approx(1 + 10 * 0.5 + 100 * 0.5**12)


def test_per_experiment_window_overrides_the_default_in_the_same_query(db, settings):
    three_days()
    load(("e2", date(2025, 12, 10), "x", 1000, 100), ("e2", date(2025, 12, 22), "x", 10, 1))
    save_overrides(Experiment.get(Experiment.name == "e2").id, {"window_days": 1})
    totals = {t.experiment_id: t.arms[0] for t in aggregate_counts(as_of=AS_OF)}
    assert totals["e1"].counted_impressions == 1110.0
    assert totals["e2"].counted_impressions == 10.0
    assert totals["e2"].impressions == 1010  # the raw total is still every day


def test_first_date_is_the_experiments_first_day_of_data(db):
    three_days()
    assert aggregate_counts("e1", as_of=AS_OF)[0].arms[0].first_date == date(2025, 12, 10)


@pytest.mark.parametrize(
    "effective_date,reason", [(date(2025, 12, 22), "exploration"), (date(2025, 12, 23), "thompson")]
)
def test_exploration_days_count_from_the_first_day_of_data(db, settings, effective_date, reason):
    # Data from the 20th: the 22nd is day 3 of 3 days of exploration, the 23rd day 4.
    load(
        *[("e1", date(2025, 12, d), v, 1000, 50 + 20 * (v == "b")) for d in (20, 21) for v in "ab"]
    )
    run_job(
        utc(2025, 12, 22, 23, 50),
        with_policy(settings, exploration_days=3),
        effective_date=effective_date,
    )
    assert AllocationReason.get().reason == reason


def test_weighted_aggregation_is_still_one_query(db, monkeypatch):
    load(*[(f"e{i}", date(2025, 12, 21), v, 100, 5) for i in range(10) for v in "ab"])
    executed = []
    original = db.execute_sql
    monkeypatch.setattr(
        db, "execute_sql", lambda sql, *a, **k: executed.append(sql) or original(sql, *a, **k)
    )
    assert len(aggregate_counts(as_of=AS_OF)) == 10
    assert len(executed) == 1 and "GROUP BY" in executed[0]


def test_window_changes_the_split_when_rates_drift(db, settings):
    # The variant was far better long ago; in the last week the control is better.
    load(
        ("e1", date(2025, 11, 1), "control", 10_000, 300),
        ("e1", date(2025, 11, 1), "variant", 10_000, 900),
        ("e1", date(2025, 12, 20), "control", 5_000, 400),
        ("e1", date(2025, 12, 20), "variant", 5_000, 250),
    )
    run_job(utc(2025, 12, 22, 23, 50), with_policy(settings, window_days=7))
    reason = AllocationReason.get()
    assert reason.reason == "thompson" and "last 7 days" in reason.explanation
    from core.schema import Allocation

    control = Allocation.select().order_by(Allocation.variant).first()
    assert control.percentage > 99


def test_day_number_counts_from_the_first_day_of_data():
    assert day_number(date(2025, 12, 23), date(2025, 12, 22)) == 2
    assert day_number(date(2025, 12, 21), date(2025, 12, 22)) == 1
