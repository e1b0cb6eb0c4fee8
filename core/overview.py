"""What the pages show at a glance: a page of experiments with their status, leader, age,
today's split and warnings; the split served today and the one published for tomorrow;
recent runs, failures first.

A page of experiments costs a few queries for the page plus a few per experiment shown,
never per experiment stored: the list stays fast with thousands.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from peewee import fn

from core.db import as_utc, position_in
from core.experiments import PolicyState, load_states
from core.schema import DailyMetric, Experiment, Run, Variant
from core.settings import Settings
from core.splits import latest_allocations, latest_reasons, publish_times, rows_on, served_on
from core.srm import sample_ratio

STATUS_OF_REASON = {
    "experiment_archived": "archived",
    "exploration": "exploring",
    "gate_not_met": "gate not met",
    "winner_rollout": "winner declared",
}
FAILED_FIRST_LIMIT = 100


@dataclass
class Glance:
    experiment_id: str
    status: str
    leader: str | None = None
    probability_best: float | None = None
    days_running: int = 0
    today: dict[str, float] = field(default_factory=dict)  # variant id -> share
    warnings: list[str] = field(default_factory=list)


def matching(search: str):
    """Experiments whose name contains `search`, ignoring case (no LIKE: ids hold `_`)."""
    query = Experiment.select(Experiment.id, Experiment.name)
    if search:
        query = query.where(position_in(fn.lower(Experiment.name), search.lower()) > 0)
    return query


def experiments_page(search: str, limit: int, offset: int, settings: Settings, now: datetime):
    """(how many match, a Glance for each on this page, by name)."""
    query = matching(search)
    total = query.count()
    page = list(query.order_by(Experiment.name).limit(limit).offset(offset).tuples())
    pks = [pk for pk, _ in page]
    today = now.astimezone(settings.tz).date()
    facts = Facts(
        load_states(pks, settings.policy),
        latest_allocations(pks),
        latest_reasons(pks),
        data_days(pks),
        last_runs([name for _, name in page]),
    )
    return total, [glance(pk, name, facts, today, settings.tz) for pk, name in page]


@dataclass(frozen=True)
class Facts:
    states: dict[int, PolicyState]
    latest: dict[int, list]
    reasons: dict
    days: dict[int, tuple[date, date, int]]
    runs: dict[str | None, tuple]  # experiment filter (None: all) -> (status, run id)


def data_days(pks: list[int]) -> dict[int, tuple[date, date, int]]:
    """experiment pk -> (first day of data, last day, how many days have data)."""
    rows = (
        DailyMetric.select(
            DailyMetric.experiment,
            fn.MIN(DailyMetric.date),
            fn.MAX(DailyMetric.date),
            fn.COUNT(DailyMetric.date.distinct()),
        )
        .where(DailyMetric.experiment.in_(pks))
        .group_by(DailyMetric.experiment)
        .tuples()
    )
    return {pk: (as_date(first), as_date(last), count) for pk, first, last, count in rows}


def as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def last_runs(names: list[str]) -> dict[str | None, tuple[str, int]]:
    """The status of the latest run over all experiments, and of each named one's own."""
    latest = (
        Run.select(Run.experiment_filter, fn.MAX(Run.id).alias("last"))
        .where(Run.experiment_filter.is_null() | Run.experiment_filter.in_(names))
        .group_by(Run.experiment_filter)
    )
    rows = (
        Run.select(Run.experiment_filter, Run.status, Run.id)
        .join(latest, on=(Run.id == latest.c.last))
        .tuples()
    )
    return {name: (status, run_id) for name, status, run_id in rows}


def glance(pk: int, name: str, facts: Facts, today: date, tz: ZoneInfo) -> Glance:
    rows = facts.latest.get(pk, [])
    state = facts.states[pk]
    found = Glance(name, status_of(state, rows, facts.reasons.get(pk)))
    if rows:
        best = max(rows, key=lambda r: r.probability)
        found.leader, found.probability_best = best.variant.name, best.probability
    first, last, counted = facts.days.get(pk, (today, today, 1))
    found.days_running = (today - first).days + 1
    found.today, srm_flagged = today_split_and_srm(pk, today, tz)
    found.warnings = warnings(state, (first, last, counted), today, facts.runs, name)
    if srm_flagged:
        found.warnings.insert(0, "sample ratio suspect yesterday")
    return found


def status_of(state: PolicyState, rows: list, reason) -> str:
    if state.archived:
        return "archived"
    if not rows:
        return "not computed"
    code = reason.reason if reason else "thompson"
    if code in STATUS_OF_REASON:
        return STATUS_OF_REASON[code]
    best = max(r.probability for r in rows)
    return "winner declared" if best >= state.policy.winner_probability else "leaning"


def warnings(state, days: tuple[date, date, int], today: date, runs: dict, name: str) -> list:
    first, last, counted = days
    found = []
    missing = (last - first).days + 1 - counted
    if missing:
        found.append(f"no data on {missing} day(s)")
    if not state.archived and last < today - timedelta(days=1):
        found.append(f"no data since {last.isoformat()}")
    own = [r for key, r in runs.items() if key in (None, name)]
    latest = max(own, key=lambda r: r[1], default=None)
    if latest and latest[0] == "failed":
        found.append(f"last run ({latest[1]}) failed")
    return found


def shares_of(rows: list) -> dict[str, float]:
    return {r.variant.name: r.percentage / 100 for r in rows}


def split_served(experiment_pk: int, published: dict, day: date, tz: ZoneInfo):
    """(ServedDay, {variant id: share}) of the split routers got on `day`, or None."""
    served = served_on(published, day, tz)
    if served is None:
        return None
    return served, shares_of(rows_on(experiment_pk, served.split))


def today_split_and_srm(pk: int, today: date, tz: ZoneInfo) -> tuple[dict, bool]:
    """Today's shares, and whether yesterday's traffic failed the sample-ratio check
    (core.report checks every day; a list page looks at the last whole day only)."""
    published = publish_times(pk)
    now_served = split_served(pk, published, today, tz)
    before = split_served(pk, published, today - timedelta(days=1), tz)
    flagged = False
    if before and before[0].whole_day:
        observed = impressions_on(pk, today - timedelta(days=1))
        result = sample_ratio([observed.get(v, 0) for v in before[1]], list(before[1].values()))
        flagged = result is not None and result.flagged
    return (now_served[1] if now_served else {}), flagged


def impressions_on(experiment_pk: int, day: date) -> dict[str, int]:
    rows = (
        DailyMetric.select(Variant.name, DailyMetric.impressions)
        .join(Variant)
        .where((DailyMetric.experiment == experiment_pk) & (DailyMetric.date == day))
        .tuples()
    )
    return dict(rows)


def today_and_next(experiment_pk: int, today: date, tz: ZoneInfo) -> dict:
    """The shares served today and, if a split for a later day is published, those."""
    published = publish_times(experiment_pk)
    served = split_served(experiment_pk, published, today, tz)
    upcoming = max((d for d in published if d > today), default=None)
    return {
        "today": served[1] if served else {},
        "next_date": upcoming,
        "next": shares_of(rows_on(experiment_pk, upcoming)) if upcoming else {},
    }


def run_row(run: Run) -> dict:
    seconds = None
    if run.finished_at and run.started_at:
        seconds = (run.finished_at - run.started_at).total_seconds()
    return {
        "run_id": run.id,
        "trigger": run.trigger,
        "effective_date": run.effective_date,
        "experiment_id": run.experiment_filter,
        "status": run.status,
        "started_at": as_utc(run.started_at),
        "finished_at": as_utc(run.finished_at) if run.finished_at else None,
        "seconds": seconds,
        "experiments_processed": run.experiments_processed,
        "error": run.error,
    }


def recent_runs(limit: int = FAILED_FIRST_LIMIT) -> list[dict]:
    """The latest runs, failed ones first, each group newest first."""
    rows = [run_row(r) for r in Run.select().order_by(Run.id.desc()).limit(limit)]
    return sorted(rows, key=lambda r: r["status"] != "failed")
