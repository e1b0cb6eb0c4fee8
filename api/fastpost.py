"""POST /data in front of FastAPI: a plain day of metrics, validated by the same model,
stored by the same group commit and answered only after its commit.

FastAPI's middleware stack, routing, dependency solving and response classes cost the
event loop several times what the write costs the writer thread, so the app takes a
POST /data itself when it is plain: a good key (or none needed), one Content-Length
within server.max_body_bytes and no Transfer-Encoding, Content-Type application/json, a
body that parses as JSON, that DailyMetrics accepts and whose date is acceptable. Every
other request goes to FastAPI (with the body already read, when it was), whose route and
middlewares give it today's answer: a 401, 413 or 422 is never written here, and nothing
was stored, so those answers are exactly what they were.

Once a write is queued the fast path answers it itself, as the route would: the stored
result, or for an error from the writer (arm cap, busy, storage fault) the answer of the
app's own exception handler. Like the middlewares, it sets the request id and the key's
name, returns X-Request-ID, and counts and times the request when metrics are on;
uvicorn writes the access-log line either way.
"""

import time
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api import metrics
from api.fastpath import POST_PATH, header
from api.logs import request_id
from api.middleware import key_name, read_body, replay, too_large
from api.schemas import StoredOut
from core.logs import KEY_NAME, REQUEST_ID
from ingest.metrics import StoreResult
from ingest.validation import DailyMetrics, date_problem

JSON_TYPE = b"application/json"
JSON_HEADER = (b"content-type", JSON_TYPE)
DAYS: dict = {}  # zone: (the second, its date there), the day of the last second asked


def today(app):
    """The date in the configured zone; worked out once a second (a zone's offset is
    whole seconds, so every instant of a second has the date of its start)."""
    zone, second = app.state.settings.tz, int(time.time())
    found = DAYS.get(zone)
    if found is None or found[0] != second:
        found = DAYS[zone] = second, datetime.fromtimestamp(second, UTC).astimezone(zone).date()
    return found[1]


async def stored(app, day: DailyMetrics) -> StoreResult:
    """Hand a validated day to the writer (its process, or a thread) and wait for its
    commit (the route and the fast path both store this way: no worker thread, no
    connection per request)."""
    cap = app.state.settings.sampling.max_active_arms
    result = await app.state.writes.submit(day, cap)
    metrics.count_posted(result.rows)
    if result.new_experiments or result.new_variants:
        await run_in_threadpool(app.state.cache.refresh)
    return result


async def store_day(app, day: DailyMetrics) -> StoredOut:
    result = await stored(app, day)
    return StoredOut(
        experiment_id=day.experiment_id,
        date=day.date,
        variants_stored=result.rows,
        new_variants=[v for _, v in result.new_variants],
    )


def stored_body(day: DailyMetrics, result: StoreResult) -> bytes:
    """store_day's StoredOut as the route's JSONResponse encodes it, without building the
    model or calling json.dumps (tests/test_fastpost.py compares the bytes): every text in
    it is an id (letters, digits and _ . : -) or a date, none with a character to escape."""
    new = ",".join(f'"{variant}"' for _, variant in result.new_variants)
    return (
        f'{{"experiment_id":"{day.experiment_id}","date":"{day.date.isoformat()}",'
        f'"variants_stored":{result.rows},"new_variants":[{new}]}}'
    ).encode()


def plain_length(scope, limit: int) -> int | None:
    """The Content-Length of a JSON body the fast path may read, or None for FastAPI."""
    length = kind = None
    for key, value in scope["headers"]:
        if key == b"content-length" and length is None:
            length = value
        elif key == b"content-type":
            kind = value
        elif key in (b"transfer-encoding", b"content-length"):
            return None  # chunked, or a second length: the middleware decides
    if length is None or not length.isdigit() or kind is None or kind.lower() != JSON_TYPE:
        return None
    size = int(length)
    return size if 0 < size <= limit else None


def valid_day(app, body: bytes) -> DailyMetrics | None:
    """The day, when the route would store it; None when FastAPI must give the error.
    pydantic reads the JSON itself (half the time of json.loads and then the model): the
    same model, so the same rules; where its parser and Python's json module differ, it
    refuses (another encoding than UTF-8, NaN, a lone surrogate) and the route decides, as
    it does for every error (tests/test_fastpost.py sends such bodies both ways)."""
    try:
        day = DailyMetrics.model_validate_json(body)
    except Exception:  # not JSON, not UTF-8, too deep, or not a valid day: FastAPI says which
        return None
    return None if date_problem(day.date, today(app)) else day


class FastPost:
    """POST /data for one app; `answer` returns None once it has answered, else the
    receive callable FastAPI must use. The common case (a body in one message, stored)
    runs in this one coroutine: every call and await on it costs the loop, which the
    POST rate on a shared machine is bound by."""

    def __init__(self, app):
        self.app = app

    async def answer(self, scope, receive, send):
        if scope["method"] != "POST":
            return receive
        started = time.perf_counter()
        state = self.app.state
        access, limit = state.access, state.settings.server.max_body_bytes
        keyed = access.enabled
        name = key_name(header(scope, b"authorization"), access.keys) if keyed else None
        length = plain_length(scope, limit)
        if (keyed and name is None) or length is None:
            return receive
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body, other = message.get("body", b""), []  # the whole body, in one message
            body = body if len(body) <= limit else None
        else:
            body, other = await read_body(receive, limit, message)
        if body is None:  # more than it declared: what the middleware answers
            self.begin(scope)
            await self.send(scope, send, too_large(limit), started)
            return None
        day = valid_day(self.app, body) if not other and len(body) == length else None
        if day is None:
            return replay(body, other, receive)
        KEY_NAME.set(name)
        self.begin(scope)
        try:
            result = await stored(self.app, day)
        except Exception as exc:
            await self.failed(scope, send, exc, started)
            return None
        body = stored_body(day, result)
        length = (b"content-length", b"%d" % len(body))
        headers = [length, JSON_HEADER, (b"x-request-id", REQUEST_ID.get().encode("latin-1"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        metrics.answered(POST_PATH, "POST", 200, time.perf_counter() - started)
        return None

    def begin(self, scope) -> None:
        """The request id, as the middleware sets it, for the log lines of this request."""
        sent = header(scope, b"x-request-id")
        REQUEST_ID.set(request_id(None if sent is None else sent.decode("latin-1")))

    async def failed(self, scope, send, exc: Exception, started: float) -> None:
        """What the app's exception handlers answer. The catch-all (500) is applied
        outside the middlewares, as Starlette does: no request id, and the error goes on
        to the server."""
        handler = self.handler_for(exc)
        response = await handler(Request(scope), exc)
        if handler is not self.app.exception_handlers.get(Exception):
            await self.send(scope, send, response, started)
            return
        await response(scope, None, send)
        metrics.answered(POST_PATH, "POST", 500, time.perf_counter() - started)
        raise exc

    def handler_for(self, exc: Exception):
        handlers = self.app.exception_handlers
        return next(handlers[kind] for kind in type(exc).__mro__ if kind in handlers)

    async def send(self, scope, send, response, started: float) -> None:
        response.raw_headers.append((b"x-request-id", REQUEST_ID.get().encode("latin-1")))
        await response(scope, None, send)
        metrics.answered(POST_PATH, "POST", response.status_code, time.perf_counter() - started)
