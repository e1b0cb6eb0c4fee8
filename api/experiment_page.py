"""The experiment page: a sentence, the leaderboard, the outlook, four charts drawn from
core.series (the same numbers as GET /experiments/{id}/series), the timeline of reasons
and the settings in effect."""

from datetime import datetime

from api import charts
from api.experiment_charts import CHARTS
from api.html import cell, esc, experiment_href, layout, number, percent, table
from core.experiments import find_experiment, settings_view
from core.outlook_report import experiment_outlook, so_far_sentence
from core.overview import today_and_next
from core.report import experiment_detail
from core.series import Series, experiment_series

REASON_LABELS = {
    "experiment_archived": "Archived: all traffic to the arm most likely to be best",
    "exploration": "Exploring: equal split",
    "gate_not_met": "Equal split until every arm has enough impressions",
    "winner_rollout": "Winner rolled out",
    "floor_applied": "Thompson Sampling with a floor per arm",
    "thompson": "Thompson Sampling",
}


def experiment_page(experiment_id: str, settings, now: datetime) -> str:
    experiment = find_experiment(experiment_id)
    detail = experiment_detail(experiment_id, settings, now)
    series = experiment_series(experiment_id, settings)
    shares = today_and_next(experiment.id, now.astimezone(settings.tz).date(), settings.tz)
    view = settings_view(experiment, settings.policy)
    names = [a.variant_id for a in series.arms]
    body = (
        f"<h1>{esc(detail['experiment_id'])}</h1>"
        f"<p>{esc(summary(detail, series))}</p>"
        + leaderboard(detail, shares, names)
        + facts(detail)
        + outlook_box(detail, series, settings, now)
        + legend(names)
        + "".join(chart(series, names) for chart in CHARTS)
        + timeline(series.history)
        + settings_table(view)
        + links(detail["experiment_id"])
    )
    return layout(detail["experiment_id"], body)


def summary(detail: dict, series: Series) -> str:
    """The plain sentence at the top of the page."""
    winner, days = detail["winner"], len(series.days)
    total = sum(v["impressions"] for v in detail["variants"])
    start = f"After {days} day{'s' if days != 1 else ''} and {total:,} impressions, "
    if winner["leader"] is None:
        return "No data yet."
    if winner["declared"]:
        return start + (
            f"{winner['variant_id']!r} is the winner: best with probability "
            f"{winner['probability_best']:.1%}."
        )
    return start + (
        f"{winner['leader']!r} leads with a {winner['probability_best']:.1%} chance of being "
        f"best; a winner needs {winner['winner_probability']:.0%}."
    )


def leaderboard(detail: dict, shares: dict, names: list[str]) -> str:
    variants = detail["variants"]
    lows = [v["credible_interval_95"][0] for v in variants]
    highs = [v["credible_interval_95"][1] for v in variants]
    span = (min(lows, default=0.0), max(highs, default=1.0))
    nxt = shares["next_date"]
    headers = ["Arm", "Impressions", "Clicks", "Rate", "95% interval", "", "P(best)", "Today"]
    headers.append(f"Next ({nxt.isoformat()})" if nxt else "Next")
    rows = [arm_row(v, span, shares, names) for v in variants]
    return "<h2>Leaderboard</h2>" + table(headers, rows, "leaderboard")


def arm_row(v: dict, span: tuple, shares: dict, names: list[str]) -> str:
    name = v["variant_id"]
    index = names.index(name) if name in names else 0
    low, high = v["credible_interval_95"]
    tip = f"{name}: {v['posterior_mean']:.3%} (95% interval {low:.3%} to {high:.3%})"
    bar = charts.interval_bar(low, high, v["posterior_mean"], span, index, tip)
    label = f"{name} (archived)" if v["archived"] else name
    swatch = f'<i style="background:{charts.color(index)}"></i> '
    return (
        f'<tr><td class="legend">{swatch}{esc(label)}</td>'
        f"{cell(number(v['impressions']), True)}{cell(number(v['clicks']), True)}"
        f"{cell(percent(v['posterior_mean'], 2), True)}"
        f"{cell(f'{percent(low, 2)} to {percent(high, 2)}')}<td>{bar}</td>"
        f"{cell(percent(v['probability_best']), True)}"
        f"{cell(percent(shares['today'].get(name)), True)}"
        f"{cell(percent(shares['next'].get(name)), True)}</tr>"
    )


def facts(detail: dict) -> str:
    ratio = detail["sample_ratio"]
    latest = detail["latest_allocation"]
    reason = latest["explanation"] if latest else "No run has computed this experiment yet."
    srm = f"fine on all {ratio['checked_days']} days checked"
    if ratio["suspect"]:
        srm = f"suspect on {len(ratio['flagged_days'])} of {ratio['checked_days']} days checked"
    elif not ratio["checked_days"]:
        srm = "no day checked yet (a day on which the split changed is not checked)"
    return (
        f"<p><b>Latest split:</b> {esc(reason)}</p>"
        "<p><b>Sample ratio</b> (traffic against the split): "
        f"<span class='{'warn' if ratio['suspect'] else ''}'>{esc(srm)}</span>.</p>"
    )


def outlook_box(detail: dict, series: Series, settings, now: datetime) -> str:
    """The outlook if it is cached; else the page asks GET .../outlook for it once loaded
    (simulating takes longer than the rest of the page)."""
    experiment_id = detail["experiment_id"]
    found = experiment_outlook(experiment_id, settings, now, (detail, series), compute=False)
    if found is None:
        src = experiment_href(experiment_id) + "/outlook"
        waiting = so_far_sentence(detail["value_delivered"])
        return (
            f'<h2>Outlook</h2><div class="outlook" id="outlook" data-src="{esc(src)}">'
            f'<p>{esc(waiting)}</p><p class="muted">Simulating the coming days…</p></div>'
        )
    lines = "".join(f"<p>{esc(text)}</p>" for text in found["sentences"])
    return f'<h2>Outlook</h2><div class="outlook" id="outlook" data-ready="1">{lines}</div>'


def legend(names: list[str]) -> str:
    items = "".join(
        f'<span><i style="background:{charts.color(k)}"></i>{esc(n)}</span>'
        for k, n in enumerate(names)
    )
    return f'<h2>Over time</h2><p class="legend">{items}</p>'


def timeline(history: list[dict]) -> str:
    """The stored splits as sentences, consecutive splits with the same reason as one."""
    groups: list[list[dict]] = []
    for item in history:
        if groups and groups[-1][-1]["reason"] == item["reason"]:
            groups[-1].append(item)
        else:
            groups.append([item])
    items = "".join(timeline_item(g) for g in reversed(groups))
    return f"<h2>Timeline</h2><ul class='timeline'>{items or '<li>No split yet.</li>'}</ul>"


def timeline_item(group: list[dict]) -> str:
    first, last = group[0], group[-1]
    when = first["date"].isoformat()
    if len(group) > 1:
        when += f" to {last['date'].isoformat()} ({len(group)} splits)"
    label = REASON_LABELS.get(last["reason"], last["reason"])
    return (
        f"<li><b>{esc(when)}</b>: {esc(label)}. <span class='muted'>{esc(last['explanation'])}"
        f" (run {esc(last['run_id'])}, {esc(last['trigger'] or 'unknown trigger')})</span></li>"
    )


def settings_table(view: dict) -> str:
    rows = [
        f"<tr>{cell(key)}{cell(value)}"
        f"{cell('this experiment' if key in view['overrides'] else 'config default')}</tr>"
        for key, value in view["settings"].items()
    ]
    state = " This experiment is archived." if view["archived"] else ""
    return f"<h2>Settings in effect</h2><p>{state}</p>" + table(
        ["Setting", "Value", "Set by"], rows, "settings"
    )


def links(experiment_id: str) -> str:
    base = esc(experiment_href(experiment_id))
    return (
        f"<p class='muted'>The numbers as data: <a href='{base}/series'>series (JSON)</a>, "
        f"<a href='{base}/metrics'>posted metrics</a>, "
        f"<a href='{base}/allocations'>every split</a>.</p>"
    )
