"""The experiment page's four charts, drawn from core.series (the numbers of GET
/experiments/{id}/series): the split over time, P(best), the cumulative rate with its band,
and each day's traffic against the split."""

from api import charts
from api.charts import Frame
from api.html import esc, percent
from core.series import Series

SHARE_TICKS = [0.0, 0.25, 0.5, 0.75, 1.0]


def figure(chart_id: str, title: str, meaning: str, svg: str) -> str:
    return (
        f'<figure id="fig-{chart_id}"><figcaption><b>{esc(title)}</b>'
        f'<span class="muted">{esc(meaning)}</span></figcaption>{svg}</figure>'
    )


def finish(chart_id: str, frame: Frame, series: Series, parts: list[str], text: tuple, ticks=None):
    """The figure: `text` is (title, what the chart means), the y axis in percent (with
    two decimals for rates, whose ticks are given)."""
    title, meaning = text
    outside = axes(frame, series, ticks or SHARE_TICKS, 2 if ticks else 0)
    return figure(chart_id, title, meaning, charts.svg(chart_id, frame, title, parts, outside))


def split_chart(series: Series, names: list[str]) -> str:
    frame = Frame(len(series.days))
    shares, changes, exploring, last = {}, {}, [], None
    for i, day in enumerate(series.days):
        if day.split is None:
            continue
        by_name = {a.variant_id: a.share for a in day.arms}
        shares[i] = [by_name.get(n) for n in names]
        if day.split.reason != last:
            changes[i] = f"{day.date}: {day.split.explanation}"
            last = day.split.reason
        if day.split.reason == "exploration":
            exploring.append(i)

    def tip(i: int, k: int) -> str:
        day = series.days[i]
        return f"{names[k]} · {day.date}: {percent(shares[i][k])} ({day.split.explanation})"

    parts = [
        charts.hatched(frame, "split", exploring, "exploration: equal split"),
        charts.stacked_steps(frame, names, shares, tip),
        charts.markers(frame, changes),
    ]
    meaning = (
        " The share of traffic each arm was served each day, stacked to 100%. A dashed line"
        " marks a change of rule (hover for the reason); hatched days were exploration."
    )
    return finish("split", frame, series, parts, ("Traffic split", meaning))


def axes(frame: Frame, series: Series, ticks: list[float], digits: int = 0) -> str:
    return charts.axes(frame, [d.date for d in series.days], ticks, lambda t: percent(t, digits))


def per_arm(series: Series, names: list[str], value) -> list[dict[int, float]]:
    """For each arm, {day index: value(arm day)} over the days the value is not None."""
    found: list[dict[int, float]] = [{} for _ in names]
    for i, day in enumerate(series.days):
        for a in day.arms:
            v = value(a)
            if v is not None:
                found[names.index(a.variant_id)][i] = v
    return found


def lines(frame: Frame, series: Series, names: list[str], points: list[dict], fmt) -> str:
    def tips(k: int) -> dict[int, str]:
        return {i: f"{names[k]} · {series.days[i].date}: {fmt(i, k)}" for i in points[k]}

    return "".join(charts.line(frame, n, k, points[k], tips(k)) for k, n in enumerate(names))


def probability_chart(series: Series, names: list[str]) -> str:
    frame = Frame(len(series.days))
    points = per_arm(series, names, lambda a: a.probability_best)
    body = lines(frame, series, names, points, lambda i, k: percent(points[k][i]))
    meaning = (
        " Each arm's probability of being the best, on the data up to that day as the policy"
        " counts it (window or discount included)."
    )
    return finish("pbest", frame, series, [body], ("Probability of being best", meaning))


def rate_range(series: Series) -> tuple[float, float]:
    """The y range of the rate chart, from the days after the first tenth: the first days'
    intervals are so wide they would flatten everything after them."""
    later = series.days[len(series.days) // 10 :]
    lows = [a.interval_95[0] for d in later for a in d.arms] or [0.0]
    highs = [a.interval_95[1] for d in later for a in d.arms] or [1.0]
    pad = (max(highs) - min(lows)) * 0.1 or 0.01
    return max(0.0, min(lows) - pad), min(1.0, max(highs) + pad)


def rate_chart(series: Series, names: list[str]) -> str:
    low, high = rate_range(series)
    frame = Frame(len(series.days), low, high)
    rates = per_arm(series, names, lambda a: a.rate)
    bounds = per_arm(series, names, lambda a: a.interval_95)
    bands = "".join(charts.band(frame, k, bounds[k]) for k in range(len(names)))

    def fmt(i: int, k: int) -> str:
        lo, hi = bounds[k][i]
        return f"{percent(rates[k][i], 2)} (95%: {percent(lo, 2)} to {percent(hi, 2)})"

    body = bands + lines(frame, series, names, rates, fmt)
    ticks = [low + (high - low) * t for t in SHARE_TICKS]
    meaning = (
        " Each arm's click rate on its counted data up to that day (posterior mean), with its"
        " 95% credible interval as a band: where bands stop overlapping, the arms differ."
    )
    return finish("rate", frame, series, [body], ("Cumulative click rate", meaning), ticks)


def traffic_chart(series: Series, names: list[str]) -> str:
    frame = Frame(len(series.days))
    observed: list[dict[int, float]] = [{} for _ in names]
    for i, day in enumerate(series.days):
        total = sum(a.impressions for a in day.arms)
        for a in day.arms:
            if total:
                observed[names.index(a.variant_id)][i] = a.impressions / total
    planned = per_arm(series, names, lambda a: a.share)
    dashed = "".join(charts.dashed(frame, n, k, planned[k]) for k, n in enumerate(names))

    def fmt(i: int, k: int) -> str:
        plan = planned[k].get(i)
        return f"{percent(observed[k][i])} of the day's impressions (split: {percent(plan)})"

    body = dashed + lines(frame, series, names, observed, fmt)
    meaning = (
        " Each arm's share of the impressions posted for the day (points) against the share"
        " the split gave it (dashed): what the sample-ratio check compares."
    )
    return finish("traffic", frame, series, [body], ("Daily traffic against the split", meaning))


CHARTS = (split_chart, probability_chart, rate_chart, traffic_chart)
