"""HTTP routes. Handlers translate between HTTP and the ingest / scheduler packages."""

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from api import experiments
from api.policy_routes import allocation_history_response
from api.schemas import (
    AllocationOut,
    ErrorOut,
    ExperimentDetail,
    ExperimentSummary,
    HealthOut,
    RecomputeIn,
    RunOut,
    StoredOut,
)
from core.db import database
from core.models import Experiment, Run
from core.settings import API_KEYS_VARIABLE
from ingest.metrics import rows_of, submit_rows
from ingest.validation import DailyMetrics, date_problem
from scheduler.job import run_job

router = APIRouter()
# Larger offsets would overflow a 64-bit database integer (a 500 found by fuzzing).
MAX_OFFSET = 1_000_000_000
NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown experiment"}}
INVALID = {422: {"model": ErrorOut, "description": "the message names the bad field"}}
NO_KEYS_WARNING = f"{API_KEYS_VARIABLE} is not set: anyone who can reach this server can write"


def today(request: Request):
    return datetime.now(request.app.state.settings.tz).date()


def unknown(experiment_id: str) -> HTTPException:
    return HTTPException(404, f"unknown experiment {experiment_id!r}")


@router.post("/data", response_model=StoredOut, responses=INVALID, tags=["write"])
async def post_data(request: Request, metrics: DailyMetrics) -> StoredOut:
    """Store one day of counts for an experiment's variants. Reposting a day replaces it."""
    problem = date_problem(metrics.date, today(request))
    if problem:
        raise RequestValidationError(
            [{"loc": ("body", "date"), "msg": problem, "type": "value_error"}]
        )
    # The writer thread stores it (sharing commits under load): no worker thread, no
    # connection per request.
    result = await asyncio.wrap_future(submit_rows(rows_of(metrics)))
    if result.new_experiments or result.new_variants:
        await run_in_threadpool(request.app.state.cache.refresh)
    return StoredOut(
        experiment_id=metrics.experiment_id,
        date=metrics.date,
        variants_stored=result.rows,
        new_variants=[v for _, v in result.new_variants],
    )


@router.get(
    "/allocation", response_model=AllocationOut, responses=NOT_FOUND | INVALID, tags=["read"]
)
async def get_allocation(
    request: Request,
    experiment_id: str = Query(examples=["ctr_test"]),
    date: str | None = Query(None, description="YYYY-MM-DD: the split in force that day"),
) -> Response:
    """The precomputed split for the next day, served from memory (no database query).
    With `date`: the split that was in force that day, read from the database."""
    if date is not None:
        return await allocation_history_response(experiment_id, date)
    body = request.app.state.cache.get(experiment_id)
    if body is None:
        raise unknown(experiment_id)
    return Response(body, media_type="application/json")


@router.post("/recompute", response_model=RunOut, responses=NOT_FOUND | INVALID, tags=["write"])
def recompute(request: Request, body: Annotated[RecomputeIn | None, Body()] = None) -> RunOut:
    """Run the nightly job now (all experiments, or one) with the nightly code."""
    experiment_id = body.experiment_id if body else None
    settings = request.app.state.settings
    with database.connection_context():
        if (
            experiment_id
            and not Experiment.select().where(Experiment.name == experiment_id).exists()
        ):
            raise unknown(experiment_id)
        summary = run_job(datetime.now(UTC), settings, "manual", experiment_id=experiment_id)
    request.app.state.cache.refresh()
    if summary.status != "success":
        raise HTTPException(500, f"run {summary.run_id} failed: {summary.error}")
    return RunOut(**summary.__dict__)


@router.get("/experiments", response_model=list[ExperimentSummary], tags=["read"])
def list_experiments(
    limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=MAX_OFFSET)
) -> list[dict]:
    """Experiments by name, with their variant count and latest allocation date."""
    with database.connection_context():
        return experiments.list_experiments(limit, offset)


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentDetail,
    responses=NOT_FOUND,
    tags=["read"],
)
def get_experiment(request: Request, experiment_id: str) -> dict:
    """Totals, posterior mean, 95% credible interval and P(best) per variant, as of now."""
    with database.connection_context():
        detail = experiments.experiment_detail(
            experiment_id, request.app.state.settings, today(request)
        )
    if detail is None:
        raise unknown(experiment_id)
    return detail


@router.get("/healthz", response_model=HealthOut, tags=["ops"])
def healthz(request: Request, response: Response) -> HealthOut:
    """Database reachable, and when the last scheduled run succeeded."""
    try:
        with database.connection_context():
            last = (
                Run.select(Run.finished_at)
                .where(Run.trigger.in_(("nightly", "catch_up")) & (Run.status == "success"))
                .order_by(Run.finished_at.desc())
                .scalar()
            )
        status, db_state = "ok", "ok"
    except Exception as exc:  # any database failure is what this endpoint reports
        status, db_state, last = "error", f"unreachable: {type(exc).__name__}", None
        response.status_code = 503
    access = request.app.state.access
    return HealthOut(
        status=status,
        database=db_state,
        last_nightly_success=last.replace(tzinfo=UTC) if last else None,
        experiments_cached=len(request.app.state.cache),
        auth=access.describe(),
        warnings=[] if access.enabled else [NO_KEYS_WARNING],
    )
