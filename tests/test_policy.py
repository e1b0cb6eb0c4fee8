"""The allocation policy as pure functions: each rule with fixed inputs, and its edges."""

import dataclasses
import itertools
from datetime import date

import numpy as np
import pytest

from core.policy import ArmCounts, decide, round_to_hundred, with_floor
from core.sampling import Prior, experiment_seed, posterior, posterior_draws, prob_best
from core.settings import PolicySettings

SEED = experiment_seed("ctr_test", date(2025, 12, 23))
README_ARMS = [ArmCounts("control", 1000, 50, 1000), ArmCounts("variant", 1000, 70, 1000)]


def policy(**changes) -> PolicySettings:
    return dataclasses.replace(PolicySettings(), **changes)


def run(arms, day=10, archived=False, samples=10_000, **changes):
    return decide(arms, day, archived, policy(**changes), Prior(), samples, SEED)


def tied_arms(count: int, impressions: int = 1000) -> list[ArmCounts]:
    return [ArmCounts(f"arm{i}", impressions, impressions // 20, impressions) for i in range(count)]


def test_defaults_are_plain_thompson_with_the_same_numbers():
    split = run(README_ARMS)
    alpha, beta = posterior([1000, 1000], [50, 70], Prior())
    assert split.reason == "thompson"
    assert np.array_equal(
        split.probabilities, prob_best(posterior_draws(alpha, beta, 10_000, SEED))
    )
    assert np.array_equal(split.shares, split.probabilities)


def test_floor_is_additive_and_keeps_the_total():
    assert with_floor([1.0, 0.0, 0.0, 0.0], 0.05) == pytest.approx([0.85, 0.05, 0.05, 0.05])
    assert with_floor([0.3, 0.7], 0.1) == pytest.approx([0.1 + 0.8 * 0.3, 0.1 + 0.8 * 0.7])


def test_floor_with_many_arms_gives_every_arm_at_least_the_floor():
    arms = [ArmCounts("best", 10_000, 900, 10_000), *tied_arms(19, 10_000)]
    split = run(arms, min_allocation=0.04)
    percentages = round_to_hundred(split.shares)
    assert split.reason == "floor_applied"
    assert min(percentages) >= 4.0
    assert sum(round(p * 10) for p in percentages) == 1000
    assert percentages[0] == pytest.approx(4.0 + 20.0 * split.probabilities[0], abs=0.1)


def test_floor_that_no_longer_fits_the_arms_falls_back_to_equal():
    split = run(tied_arms(4), min_allocation=0.3)
    assert split.shares == pytest.approx([0.25] * 4)
    assert "does not fit 4 arms" in split.explanation


@pytest.mark.parametrize("day,reason", [(1, "exploration"), (3, "exploration"), (4, "thompson")])
def test_exploration_days_give_an_equal_split_then_end(day, reason):
    split = run(README_ARMS, day=day, exploration_days=3)
    assert split.reason == reason
    if reason == "exploration":
        assert split.shares == pytest.approx([0.5, 0.5])
        assert split.explanation == f"Exploration day {day} of 3: equal split."


def test_gate_not_met_names_the_arm_with_fewest_impressions():
    arms = [*README_ARMS, ArmCounts("late", 420, 30, 420)]
    split = run(arms, min_impressions=1000)
    assert split.reason == "gate_not_met"
    assert split.shares == pytest.approx([1 / 3] * 3)
    assert "'late' has 420" in split.explanation


def test_gate_met_on_the_last_arm_releases_thompson():
    arms = [*README_ARMS, ArmCounts("late", 1000, 30, 1000)]
    assert run(arms, min_impressions=1000).reason == "thompson"
    short = [*README_ARMS, ArmCounts("late", 1000, 30, 999)]
    assert run(short, min_impressions=1000).reason == "gate_not_met"


def test_gate_uses_every_day_of_impressions_not_the_window():
    # Counted impressions are windowed (0 here) but the arm has served 5000 in total.
    arms = [ArmCounts("a", 0, 0, 5000), ArmCounts("b", 0, 0, 5000)]
    assert run(arms, min_impressions=1000).reason == "thompson"


def test_winner_rollout_gives_the_winner_everything_minus_the_floors():
    arms = [ArmCounts("control", 20_000, 1000, 20_000), ArmCounts("variant", 20_000, 1400, 20_000)]
    split = run(arms, auto_rollout=True, min_allocation=0.05)
    assert split.winner.declared and split.winner.leader == 1
    assert split.reason == "winner_rollout"
    assert split.shares == pytest.approx([0.05, 0.95])
    assert "'variant'" in split.explanation


def test_winner_disappears_when_new_data_closes_the_gap():
    strong = [ArmCounts("a", 20_000, 1000, 20_000), ArmCounts("b", 20_000, 1400, 20_000)]
    assert run(strong, auto_rollout=True).reason == "winner_rollout"
    closer = [ArmCounts("a", 40_000, 2380, 40_000), ArmCounts("b", 40_000, 2420, 40_000)]
    split = run(closer, auto_rollout=True)
    assert not split.winner.declared
    assert split.reason == "thompson"


def test_winner_is_reported_but_not_rolled_out_by_default():
    arms = [ArmCounts("a", 20_000, 1000, 20_000), ArmCounts("b", 20_000, 1400, 20_000)]
    split = run(arms)
    assert split.winner.declared and split.reason == "thompson"


def test_winner_needs_value_remaining_below_the_limit_too():
    # P(best) clears a 0.6 bar but the leader could still be beaten by several percent.
    arms = [ArmCounts("a", 2000, 100, 2000), ArmCounts("b", 2000, 112, 2000)]
    split = run(arms, winner_probability=0.6, value_remaining=0.01)
    assert split.winner.probability >= 0.6
    assert split.winner.value_remaining > 0.01
    assert not split.winner.declared
    generous = run(arms, winner_probability=0.6, value_remaining=0.5)
    assert generous.winner.declared


def test_value_remaining_is_zero_for_a_clear_leader():
    arms = [ArmCounts("a", 100_000, 1000, 100_000), ArmCounts("b", 100_000, 3000, 100_000)]
    assert run(arms).winner.value_remaining == 0.0


def test_archived_experiment_sends_everything_to_the_likely_best_arm():
    split = run(README_ARMS, archived=True, min_allocation=0.1, exploration_days=30, day=1)
    assert split.reason == "experiment_archived"
    assert list(split.shares) == [0.0, 1.0]


def test_counting_note_names_the_window_or_discount():
    assert "last 14 days" in run(README_ARMS, window_days=14).explanation
    assert "0.9^(age in days)" in run(README_ARMS, discount=0.9).explanation


def test_exact_method_is_used_for_the_split():
    split = run(README_ARMS, method="exact")
    assert split.probabilities.sum() == pytest.approx(1.0)
    assert split.probabilities[1] == pytest.approx(0.9696, abs=0.003)


def test_a_single_active_arm_gets_everything_as_plain_thompson():
    split = run(README_ARMS[:1], min_allocation=0.1)
    assert (split.reason, list(split.shares)) == ("thompson", [1.0])


@pytest.mark.parametrize(
    "changes",
    [{}, {"min_allocation": 0.05}, {"min_impressions": 5000}, {"exploration_days": 20}],
    ids=["thompson", "floor", "gate", "exploration"],
)
def test_skipping_the_winner_measure_changes_no_split_when_rollout_is_off(changes):
    arms = [ArmCounts("a", 20_000, 1000, 20_000), ArmCounts("b", 20_000, 1400, 20_000)]
    full = decide(arms, 10, False, policy(**changes), Prior(), 10_000, SEED)
    quick = decide(arms, 10, False, policy(**changes), Prior(), 10_000, SEED, measure_winner=False)
    assert np.array_equal(full.shares, quick.shares)
    assert (full.reason, full.explanation) == (quick.reason, quick.explanation)
    assert quick.winner.leader == full.winner.leader and quick.winner.value_remaining is None


def test_archived_experiment_needs_only_the_leader():
    arms = [ArmCounts("a", 2000, 100, 2000), ArmCounts("b", 2000, 130, 2000)]
    quick = decide(arms, 10, True, policy(), Prior(), 10_000, SEED, measure_winner=False)
    assert quick.reason == "experiment_archived"
    assert quick.shares.tolist() == [0.0, 1.0]


# Rules in the order they are checked, each with a condition that makes it apply on its own
# to STRONG (a declared winner at 20,000 impressions an arm): day, archived and policy changes.
STRONG = [ArmCounts("a", 20_000, 1000, 20_000), ArmCounts("b", 20_000, 1400, 20_000)]
RULES = {
    "experiment_archived": {"archived": True},
    "exploration": {"day": 2, "exploration_days": 3},
    "gate_not_met": {"min_impressions": 20_001},
    "winner_rollout": {"auto_rollout": True},
    "floor_applied": {"min_allocation": 0.05},
    "thompson": {},
}


@pytest.mark.parametrize("reason", RULES)
def test_each_rule_applies_on_its_own(reason):
    assert run(STRONG, **RULES[reason]).reason == reason


@pytest.mark.parametrize("earlier,later", list(itertools.combinations(RULES, 2)))
def test_when_two_rules_apply_the_earlier_one_decides(earlier, later):
    split = run(STRONG, **{**RULES[later], **RULES[earlier]})
    assert split.reason == earlier
    if earlier in ("exploration", "gate_not_met"):
        assert split.shares == pytest.approx([0.5, 0.5])
