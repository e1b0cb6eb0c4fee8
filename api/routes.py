"""HTTP routes, grouped by resource. Handlers translate between HTTP and core / ingest /
scheduler.job: they open connections and transactions, and hold no SQL of their own."""

from datetime import UTC, date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.errors import invalid
from api.fastpost import store_day
from api.recompute import LONG_RUN, launch, recompute_finished
from api.schemas import (
    AllocationOut,
    HealthOut,
    HistoryItem,
    RecomputeIn,
    RunOut,
    StoredOut,
)
from api.serving import (
    INVALID,
    LOADING,
    NOT_FOUND,
    NOT_MODIFIED,
    encoded_response,
    loaded_cache,
    still_loading,
)
from core.db import database, storage_fault
from core.db import health as storage_health
from core.experiments import find_experiment
from core.runs_view import find_run, latest_scheduled_run, run_problems
from core.settings import API_KEYS_VARIABLE
from core.splits import allocation_on, allocation_series
from ingest.validation import DailyMetrics, date_problem, iso_date
from scheduler.runs import last_scheduled_success

router = APIRouter()
# Larger offsets would overflow a 64-bit database integer (a 500 found by fuzzing).
MAX_OFFSET = 1_000_000_000
NO_KEYS_WARNING = f"{API_KEYS_VARIABLE} is not set: anyone who can reach this server can write"


def now() -> datetime:
    return datetime.now(UTC)


def today(request: Request) -> date:
    return now().astimezone(request.app.state.settings.tz).date()


# --- metrics -------------------------------------------------------------------------


@router.post("/data", response_model=StoredOut, responses=INVALID, tags=["write"])
async def post_data(request: Request, metrics: DailyMetrics) -> StoredOut:
    """Store one day of counts for an experiment's variants. Reposting a day replaces it."""
    problem = date_problem(metrics.date, today(request))
    if problem:
        raise invalid("date", problem)
    # A plain request is answered before FastAPI (api/fastpost.py), stored the same way.
    return await store_day(request.app, metrics)


# --- allocations ---------------------------------------------------------------------


@router.get(
    "/allocation",
    response_model=AllocationOut,
    responses=NOT_FOUND | INVALID | LOADING | NOT_MODIFIED,
    tags=["read"],
)
async def get_allocation(
    request: Request,
    experiment_id: str = Query(examples=["ctr_test"]),
    date: str | None = Query(None, description="YYYY-MM-DD: the split in force that day"),
) -> Response:
    """The precomputed split for the next day, served from memory (no database query).
    With `date`: the split that was in force that day, read from the database."""
    if date is not None:
        tz = request.app.state.settings.tz
        body = await run_in_threadpool(allocation_on_day, experiment_id, parse_day(date), tz)
        return Response(body, media_type="application/json")
    cache = await loaded_cache(request)
    if cache is None:
        return still_loading()
    found = cache.served_for(experiment_id)
    if found is None:
        raise HTTPException(404, f"unknown experiment {experiment_id!r}")
    return encoded_response(found, request)


def parse_day(text: str) -> date:
    day = iso_date(text)
    if day is None:
        raise invalid(
            "query.date", f"expected a real calendar date written YYYY-MM-DD, got {text!r}"
        )
    return day


def allocation_on_day(experiment_id: str, day: date, tz: ZoneInfo) -> bytes:
    with database.connection_context():
        body = allocation_on(find_experiment(experiment_id), day, tz)
    if body is None:
        raise HTTPException(404, f"no allocation was in force for {experiment_id!r} on {day}")
    return body


@router.get(
    "/experiments/{experiment_id}/allocations",
    response_model=list[HistoryItem],
    tags=["lifecycle"],
)
def list_allocations(experiment_id: str) -> list[dict]:
    """Every stored split, oldest first, with its reason and the run that wrote it."""
    with database.connection_context():
        return allocation_series(find_experiment(experiment_id))


@router.post(
    "/recompute", response_model=RunOut, responses=NOT_FOUND | INVALID | LONG_RUN, tags=["write"]
)
def recompute(
    request: Request, response: Response, body: Annotated[RecomputeIn | None, Body()] = None
) -> RunOut:
    """Run the nightly job now (all experiments, or one) with the nightly code. A run that
    ends within server.recompute_wait_seconds is answered with its summary; a longer one
    with 202 and `Location: /runs/{id}`, while it goes on in the background."""
    experiment_id = body.experiment_id if body else None
    if experiment_id:
        with database.connection_context():
            find_experiment(experiment_id)
    settings = request.app.state.settings
    finished = recompute_finished(request.app.state.cache, experiment_id)
    job = launch(settings, experiment_id, finished)
    summary = job.wait(settings.server.recompute_wait_seconds)
    if summary is None:
        response.status_code = 202
        response.headers["Location"] = f"/runs/{job.run_id}"
        with database.connection_context():
            return RunOut(**find_run(job.run_id))
    if summary.status != "success":
        raise HTTPException(500, f"run {summary.run_id} failed: {summary.error}")
    return RunOut(**summary.__dict__)


# --- operations ----------------------------------------------------------------------


UNAVAILABLE = {503: {"model": HealthOut, "description": "the database does not answer"}}


@router.get("/healthz", response_model=HealthOut, responses=UNAVAILABLE, tags=["ops"])
def healthz(request: Request, response: Response) -> HealthOut:
    """Database reachable, when the last scheduled run succeeded, and `degraded` with the
    reasons when the last scheduled run failed or is more than a day and a half old."""
    try:
        with database.connection_context():
            last, latest = last_scheduled_success(), latest_scheduled_run()
        status, db_state = "ok", "ok"
    except Exception as exc:  # any database failure is what this endpoint reports
        cause = storage_fault(exc) or type(exc).__name__
        status, db_state, last, latest = "error", f"unreachable: {cause}", None, None
        response.status_code = 503
    reasons = degraded_reasons(latest, last) + storage_health.problems()
    access = request.app.state.access
    return HealthOut(
        status="degraded" if status == "ok" and reasons else status,
        database=db_state,
        last_nightly_success=last,
        experiments_cached=len(request.app.state.cache),
        auth=access.describe(),
        warnings=[] if access.enabled else [NO_KEYS_WARNING],
        reasons=reasons,
        last_scheduled_run=latest,
    )


def degraded_reasons(latest: dict | None, last_success: datetime | None) -> list[str]:
    """Each reason /healthz is degraded for: a list other checks append to."""
    return run_problems(latest, last_success, now())
