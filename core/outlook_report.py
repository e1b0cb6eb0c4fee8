"""The outlook of one experiment: where its futures start (from core.series), the result
in plain words, and the JSON of GET /experiments/{id}/outlook. The simulation itself is
core.outlook."""

from datetime import timedelta

from core.experiments import find_experiment, load_state
from core.outlook import GAIN_DAYS, TRAFFIC_DAYS, Outlook, Start, cached, outlook
from core.report import experiment_detail
from core.series import experiment_series


def experiment_outlook(experiment_id: str, settings, now, known=None, compute=True) -> dict:
    """The outlook's JSON. `known` is (report, series) when the caller has them; with
    compute=False, None instead of a result not cached yet (the page asks for it later)."""
    detail, series = known or (
        experiment_detail(experiment_id, settings, now),
        experiment_series(experiment_id, settings),
    )
    state = load_state(find_experiment(experiment_id).id, settings.policy)
    start = start_of(series, state, (settings.sampling.prior_alpha, settings.sampling.prior_beta))
    declared = detail["winner"]["declared"]
    so_far = detail["value_delivered"]
    if start is None or declared:
        return body(None, start, declared, so_far)
    found = outlook(start) if compute else cached(start)
    return None if found is None else body(found, start, declared, so_far)


def body(found: Outlook | None, start: Start | None, declared_now: bool, so_far: dict) -> dict:
    result = {
        "declared_now": declared_now,
        "clicks_gained_so_far": so_far["clicks_gained"],
        "days_so_far": so_far["days"],
        "from_day": start.last_day if start else None,
        "daily_impressions": start.daily_impressions if start else None,
        "days_to_winner": None,
        "declared_share": None,
        "clicks_gained_next": None,
        "gain_days": GAIN_DAYS,
        "simulations": None,
        "horizon_days": None,
        "sentences": [so_far_sentence(so_far), *sentences(found, start, declared_now)],
    }
    if found is not None:
        if found.days_to_winner:
            result["days_to_winner"] = dict(zip(QUANTILES, found.days_to_winner, strict=True))
        low, mean, high = found.clicks_gained
        result["clicks_gained_next"] = {"low": low, "mean": mean, "high": high}
        result["declared_share"] = found.declared_share
        result["simulations"], result["horizon_days"] = found.simulations, found.horizon
    return result


QUANTILES = ("low", "median", "high")  # 5%, 50%, 95% of the futures


def start_of(series, state, prior: tuple[float, float]) -> Start | None:
    """The start of the futures from an experiment's series (core.series) and policy state;
    None without two active arms or any recent traffic."""
    if not series.days:
        return None
    last = series.days[-1]
    active = [a for a in last.arms if a.active]
    recent = series.days[-TRAFFIC_DAYS:]
    daily = round(sum(a.impressions for d in recent for a in d.arms) / len(recent))
    if len(active) < 2 or daily == 0:
        return None
    names = tuple(a.variant_id for a in active)
    window = state.policy.window_days
    return Start(
        series.experiment_id,
        last.date,
        series.days[0].date,
        names,
        tuple(a.cumulative_impressions for a in active),
        tuple(a.cumulative_clicks for a in active),
        tuple((a.counted_impressions, a.counted_clicks) for a in active),
        tuple(day_counts(d, names) for d in series.days[-window:]) if window else (),
        split_in_force(series, names),
        daily,
        state.policy,
        state.archived,
        prior,
    )


def day_counts(day, names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    by_name = {a.variant_id: (a.impressions, a.clicks) for a in day.arms}
    return tuple(by_name.get(n, (0, 0)) for n in names)


def split_in_force(series, names: tuple[str, ...]) -> tuple[float, ...]:
    """The latest published split over the active arms (equal before the first)."""
    if not series.history:
        return tuple(1 / len(names) for _ in names)
    shares = {a["variant_id"]: a["percentage"] for a in series.history[-1]["allocations"]}
    picked = [shares.get(n, 0.0) for n in names]
    total = sum(picked)
    return tuple(p / total if total else 1 / len(names) for p in picked)


def sentences(found: Outlook | None, start: Start | None, declared_now: bool) -> list[str]:
    """The outlook in plain words, as the page shows it."""
    if declared_now:
        return ["A winner is declared on the data so far: nothing left to forecast for it."]
    if found is None or start is None:
        return ["No outlook yet: it needs two active arms and traffic in the last days."]
    return [winner_sentence(found, start), gain_sentence(found), assumptions(found)]


def so_far_sentence(so_far: dict) -> str:
    return (
        f"So far the bandit gained {so_far['clicks_gained']:+,.0f} clicks over an equal split "
        f"of the same traffic, over {so_far['days']} days."
    )


def winner_sentence(found: Outlook, start: Start) -> str:
    if found.days_to_winner is None:
        return (
            f"A winner is unlikely within {found.horizon} days: only "
            f"{found.declared_share:.0%} of the simulated futures declare one."
        )
    low, mid, high = found.days_to_winner
    when = (start.last_day + timedelta(days=mid)).isoformat()
    upper = f"more than {found.horizon}" if high > found.horizon else str(high)
    return (
        f"A winner would be declared in about {mid} days (around {when}); in 90% of the "
        f"simulated futures between {low} and {upper} days."
    )


def gain_sentence(found: Outlook) -> str:
    low, mean, high = found.clicks_gained
    return (
        f"Over the next {GAIN_DAYS} days the bandit is expected to gain {mean:+,.0f} clicks "
        f"over an equal split (90% of futures: {low:+,.0f} to {high:+,.0f})."
    )


def assumptions(found: Outlook) -> str:
    return (
        f"Simulated: {found.simulations} futures of {found.daily_impressions:,} impressions a "
        "day under this experiment's policy, the arms' rates drawn from their posterior and "
        "assumed not to change."
    )
