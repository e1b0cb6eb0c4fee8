"""HTTP routes of /experiments: the list and report, the series, the posted metrics and
the outlook, and the lifecycle (settings, archive). Handlers hold no SQL of their own."""

import csv
import io

from fastapi import APIRouter, Query, Request, Response

from api.accept import preferred
from api.routes import MAX_OFFSET, now
from api.schemas import ExperimentDetail, ExperimentSummary, SettingsIn, SettingsOut
from api.series_schemas import MetricRowOut, OutlookOut, SeriesOut
from api.serving import NOT_FOUND
from core.db import database, utc_text, write_transaction
from core.experiments import (
    change_settings,
    change_variant_archived,
    find_experiment,
    find_variant,
    set_experiment_archived,
    settings_view,
)
from core.logs import audit
from core.outlook_report import experiment_outlook
from core.report import experiment_detail, list_experiments
from core.series import experiment_series, metrics_rows, series_json

router = APIRouter()
JSON_OR_CSV = ["application/json", "text/csv"]
METRIC_COLUMNS = ["date", "variant_id", "impressions", "clicks", "updated_at"]


# --- experiments ---------------------------------------------------------------------


@router.get("/experiments", response_model=list[ExperimentSummary], tags=["read"])
def get_experiments(
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_OFFSET)
) -> list[dict]:
    """Experiments by name, with their variant count and latest allocation date."""
    with database.connection_context():
        return list_experiments(limit, offset)


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentDetail,
    responses=NOT_FOUND,
    tags=["read"],
)
def get_experiment(request: Request, experiment_id: str) -> dict:
    """Totals, posterior mean, 95% credible interval and P(best) per variant, as of now."""
    with database.connection_context():
        return experiment_detail(experiment_id, request.app.state.settings, now())


@router.get("/experiments/{experiment_id}/settings", response_model=SettingsOut, tags=["lifecycle"])
def get_settings(request: Request, experiment_id: str) -> dict:
    """The policy in effect for this experiment, which keys it overrides, and its arms."""
    with database.connection_context():
        return settings_view(find_experiment(experiment_id), request.app.state.settings.policy)


@router.put("/experiments/{experiment_id}/settings", response_model=SettingsOut, tags=["lifecycle"])
def put_settings(request: Request, experiment_id: str, body: SettingsIn) -> dict:
    """Set the fields sent (null resets one to the config default); takes effect next run."""
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    defaults = request.app.state.settings.policy
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        before = settings_view(experiment, defaults)
        change_settings(experiment, changes, defaults)
        after = settings_view(experiment, defaults)
    audit("settings", experiment_id, changed(before["settings"], after["settings"], changes))
    return after


def changed(before: dict, after: dict, keys) -> dict[str, tuple]:
    return {key: (before[key], after[key]) for key in keys}


@router.post("/experiments/{experiment_id}/archive", response_model=SettingsOut, tags=["lifecycle"])
def archive_experiment(request: Request, experiment_id: str) -> dict:
    """End the experiment: from the next run all traffic goes to the likely best arm."""
    return experiment_archived(request, experiment_id, True)


@router.post(
    "/experiments/{experiment_id}/unarchive", response_model=SettingsOut, tags=["lifecycle"]
)
def unarchive_experiment(request: Request, experiment_id: str) -> dict:
    """Resume the experiment under its policy from the next run."""
    return experiment_archived(request, experiment_id, False)


def experiment_archived(request: Request, experiment_id: str, archived: bool) -> dict:
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        was = settings_view(experiment, request.app.state.settings.policy)["archived"]
        set_experiment_archived(experiment.id, archived)
        body = settings_view(experiment, request.app.state.settings.policy)
    audit("archive", experiment_id, {"archived": (was, archived)})
    return body


@router.post(
    "/experiments/{experiment_id}/variants/{variant_id}/archive",
    response_model=SettingsOut,
    tags=["lifecycle"],
)
def archive_variant(request: Request, experiment_id: str, variant_id: str) -> dict:
    """Stop allocating to this arm from the next run; its data and history stay."""
    return variant_archived(request, experiment_id, variant_id, True)


@router.post(
    "/experiments/{experiment_id}/variants/{variant_id}/unarchive",
    response_model=SettingsOut,
    tags=["lifecycle"],
)
def unarchive_variant(request: Request, experiment_id: str, variant_id: str) -> dict:
    """Allocate to this arm again from the next run."""
    return variant_archived(request, experiment_id, variant_id, False)


def variant_archived(request: Request, experiment_id: str, variant_id: str, archived: bool):
    defaults = request.app.state.settings.policy
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        cap = request.app.state.settings.sampling.max_active_arms
        was = variant_flags(settings_view(experiment, defaults))
        change_variant_archived(
            experiment, find_variant(experiment, variant_id), archived, defaults, cap
        )
        body = settings_view(experiment, defaults)
    request.app.state.cache.refresh()  # after the commit, so it sees the change
    audit("archive", f"{experiment_id}/{variant_id}", {"archived": (was[variant_id], archived)})
    return body


def variant_flags(view: dict) -> dict[str, bool]:
    return {v["variant_id"]: v["archived"] for v in view["variants"]}


# --- series and posted metrics (issue 12) ----------------------------------------------


@router.get(
    "/experiments/{experiment_id}/series",
    response_model=SeriesOut,
    responses=NOT_FOUND,
    tags=["read"],
)
def get_series(request: Request, experiment_id: str) -> dict:
    """Day by day and per arm: counts posted, running totals, totals as the policy counts
    them, rate with its 95% interval, P(best), and the split served that day."""
    with database.connection_context():
        return series_json(experiment_series(experiment_id, request.app.state.settings))


@router.get(
    "/experiments/{experiment_id}/metrics",
    response_model=list[MetricRowOut],
    responses=NOT_FOUND | {200: {"content": {"text/csv": {}}}},
    tags=["read"],
)
def get_metrics(request: Request, experiment_id: str):
    """The daily rows as posted, by day then arm; CSV with `Accept: text/csv`."""
    with database.connection_context():
        rows = metrics_rows(experiment_id)
    if preferred(request.headers.get("accept"), JSON_OR_CSV) == "text/csv":
        return Response(csv_text(rows), media_type="text/csv; charset=utf-8")
    return rows


def csv_text(rows: list[dict]) -> str:
    """The rows as CSV, a header line first; times as in the JSON (RFC 3339, Z)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(METRIC_COLUMNS)
    for row in rows:
        stamp = utc_text(row["updated_at"].replace(tzinfo=None))
        writer.writerow([*(row[c] for c in METRIC_COLUMNS[:-1]), stamp])
    return out.getvalue()


@router.get(
    "/experiments/{experiment_id}/outlook",
    response_model=OutlookOut,
    responses=NOT_FOUND,
    tags=["read"],
)
def get_outlook(request: Request, experiment_id: str) -> dict:
    """The coming days simulated under the experiment's own policy: when a winner would be
    declared and the clicks gained over an equal split (seeded, cached; see the README)."""
    with database.connection_context():
        return experiment_outlook(experiment_id, request.app.state.settings, now())
