"""Operators' routes: readiness and liveness probes, run history, Prometheus metrics.
(/healthz, the overall verdict, is with the other routes in api/routes.py.)"""

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from api import metrics
from api.routes import MAX_OFFSET
from api.schemas import ErrorOut, LiveOut, ReadyOut, RunDetail
from core.db import database
from core.runs_view import find_run, list_runs, probe_write

router = APIRouter()

NOT_READY = {503: {"model": ReadyOut, "description": "not ready: the problems say why"}}


@router.get("/readyz", response_model=ReadyOut, responses=NOT_READY, tags=["ops"])
def readyz(request: Request, response: Response) -> ReadyOut:
    """Ready for traffic: the database answers and takes writes, and the allocation cache
    has loaded. 503 otherwise, naming the problems."""
    problems = [] if request.app.state.cache.refreshed_at is not None else ["cache: not loaded"]
    try:
        with database.connection_context():
            probe_write(READY_PROBE_WAIT_MS)
    except Exception as exc:  # any database failure is what this endpoint reports
        problems.append(f"database: not writable ({type(exc).__name__}: {exc})")
    if problems:
        response.status_code = 503
    return ReadyOut(status="not_ready" if problems else "ready", problems=problems)


READY_PROBE_WAIT_MS = 200  # a probe must answer quickly; a lock held longer means busy, not down


@router.get("/livez", response_model=LiveOut, tags=["ops"])
def livez() -> LiveOut:
    """The process answers (no database query): restart it when this fails."""
    return LiveOut(status="alive")


@router.get("/runs", response_model=list[RunDetail], tags=["ops"])
def get_runs(
    limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_OFFSET)
) -> list[dict]:
    """Runs, newest first: trigger, times, status, experiments processed, phases, error."""
    with database.connection_context():
        return list_runs(limit, offset)


RUN_NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown run"}}


@router.get("/runs/{run_id}", response_model=RunDetail, responses=RUN_NOT_FOUND, tags=["ops"])
def get_run(run_id: int = Path(ge=1, le=2**63 - 1)) -> dict:
    """One run; poll it after a 202 from POST /recompute until status is not running."""
    with database.connection_context():
        found = find_run(run_id)
    if found is None:
        raise HTTPException(404, f"unknown run {run_id}")
    return found


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=PlainTextResponse,
    responses={404: {"model": ErrorOut, "description": "server.metrics is false"}},
)
def get_metrics(request: Request) -> Response:
    """Prometheus metrics (text exposition format); 404 when server.metrics is off."""
    if not request.app.state.settings.server.metrics:
        raise HTTPException(404, "metrics are off (server.metrics = false)")
    return metrics.metrics_response(request.app.state.cache)
