"""The routes of the hot read path that routers use: GET /allocations and GET /assign,
and the helpers GET /allocation shares with them. The fast path (api/fastpath.py) answers
plain requests before routing; these routes document the endpoints and answer the rest
(percent-encoded ids, errors, a cache still loading) with the same bytes and headers."""

from fastapi import APIRouter, HTTPException, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from api.errors import error_response
from api.fastpath import MAX_UNIT_LENGTH, assignment_response, respond
from api.schemas import AllocationsOut, AssignOut, ErrorOut

router = APIRouter()
NOT_FOUND = {404: {"model": ErrorOut, "description": "unknown experiment"}}
INVALID = {422: {"model": ErrorOut, "description": "the message names the bad field"}}
LOADING = {503: {"model": ErrorOut, "description": "still loading the served splits"}}
NOT_MODIFIED = {304: {"description": "If-None-Match holds the current ETag: no body"}}
LOAD_WAIT_S = 10  # how long a read waits for the first load before a 503


@router.get(
    "/allocations", response_model=AllocationsOut, responses=LOADING | NOT_MODIFIED, tags=["read"]
)
async def get_allocations(request: Request) -> Response:
    """Every served split in one body (sorted by experiment id), encoded once per publish:
    send its ETag back in If-None-Match to get a 304; gzip when accepted."""
    snapshot = await complete_snapshot(request)
    if snapshot is None:
        return still_loading()
    return encoded_response(snapshot.bulk.pick(request.scope), request)


@router.get(
    "/assign", response_model=AssignOut, responses=NOT_FOUND | INVALID | LOADING, tags=["read"]
)
async def get_assign(
    request: Request,
    experiment_id: str = Query(examples=["ctr_test"]),
    unit_id: str = Query(min_length=1, max_length=MAX_UNIT_LENGTH, examples=["user-42"]),
) -> Response:
    """The arm of one unit (user, session, request id) under the served split, hashed from
    memory as the Router guide specifies: the same answer as the client module."""
    snapshot = await complete_snapshot(request)
    if snapshot is None:
        return still_loading()
    assigner = snapshot.assigner(experiment_id)
    if assigner is None:
        raise HTTPException(404, f"unknown experiment {experiment_id!r}")
    return raw_response(*assignment_response(assigner, unit_id, request.method))


async def loaded_cache(request: Request):
    """The cache once its first load is done (None if it is still loading after a while)."""
    cache = request.app.state.cache
    if cache.loaded.is_set() or await run_in_threadpool(cache.loaded.wait, LOAD_WAIT_S):
        return cache
    return None


async def complete_snapshot(request: Request):
    """The current snapshot once its bulk payload is built (None if still loading)."""
    cache = await loaded_cache(request)
    snapshot = cache.snapshot if cache else None
    if snapshot is None or snapshot.complete.is_set():
        return snapshot
    done = await run_in_threadpool(snapshot.complete.wait, LOAD_WAIT_S)
    return snapshot if done else None


def still_loading() -> Response:
    message = "the web process is still loading the served splits; retry shortly"
    return error_response("loading", message, 503, headers={"Retry-After": "1"})


def encoded_response(found, request: Request) -> Response:
    """The fast path's answer (api/fastpath.py), byte for byte and header for header."""
    return raw_response(*respond(found, request.scope))


def raw_response(status: int, headers: list, body: bytes) -> Response:
    response = Response(body, status_code=status)
    response.raw_headers = list(headers)
    return response
