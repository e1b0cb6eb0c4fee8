"""The POST /data fast path: the same answers as the FastAPI route, for good and bad bodies."""

import asyncio
import dataclasses
import json
from concurrent.futures import Future

import fastapi
import pytest
from fastapi.testclient import TestClient

from api import metrics
from api.app import create_app
from core.db import OperationalError
from core.secrets import ApiKeys
from ingest.writer_process import WriterThread
from tests.helpers import CONTRACT_POST, KEY
from tests.processes import query


def day(**changes) -> dict:
    return {**CONTRACT_POST, **changes}


def arms(*counts) -> list[dict]:
    return [
        {"variant_id": f"arm_{i}", "impressions": n, "clicks": c} for i, (n, c) in enumerate(counts)
    ]


def encoded(body) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


GOOD_BODIES = [
    CONTRACT_POST,  # a new experiment: new_variants lists both
    CONTRACT_POST,  # the repost: none new
    day(variants=arms((10, 1), (10, 2), (10, 3))),  # a third arm
    day(experiment_id="b" * 128, date="2000-01-01", variants=arms((10**12, 10**12))),
    encoded(CONTRACT_POST).decode().encode("utf-16"),  # JSON may be UTF-16
    b'  {"experiment_id": "ws", "date": "2025-12-22", "variants": '
    b'[{"variant_id": "a", "impressions": 0, "clicks": 0}]}  ',
    # A key given twice: the last one counts, as Python's json module reads it.
    b'{"experiment_id": "dup", "experiment_id": "dup2", "date": "2025-12-22", "variants": '
    b'[{"variant_id": "a", "impressions": 9, "clicks": 1, "clicks": 2}]}',
    b'{"experiment_id": "esc\\u0061ped", "date": "2025-12-22", "variants": '
    b'[{"variant_id": "\\u0062", "impressions": -0, "clicks": 0}]}',
    encoded(CONTRACT_POST).decode().encode("utf-8-sig"),  # a byte order mark
]
BAD_BODIES = [
    b"{",
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"\xff\xfe\xfa",
    b"[" * 100_000,
    b'{"experiment_id": ' + b"1" * 5000 + b"}",
    b'{"experiment_id": NaN}',
    encoded(day(variants=arms((1e3, 1)))),
    encoded(day(variants=arms((float("inf"), 1)))),
    encoded(CONTRACT_POST) + b" x",  # something after the JSON
    encoded(CONTRACT_POST) + b"\x00",
    b'{"experiment_id": "ctr_test", "date": "2025-12-22", "variants": '
    b'[{"variant_id": "\\ud800", "impressions": 1, "clicks": 0}]}',  # a lone surrogate
    {"date": "2025-12-22", "variants": arms((1, 0))},
    day(extra=1),
    day(experiment_id="-x"),
    day(experiment_id="a" * 129),
    day(experiment_id="é"),
    day(date="2025-1-1"),
    day(date="2025-02-30"),
    day(date=1766361600),
    day(date="1999-12-31"),
    day(date="2099-01-01"),
    day(variants=[]),
    day(variants=arms(*[(1, 0)] * 101)),
    day(variants=arms((10, 11))),
    day(variants=arms((10.0, 1))),
    day(variants=arms(("10", 1))),
    day(variants=arms((True, 1))),
    day(variants=arms((-1, 0))),
    day(variants=arms((10**12 + 1, 0))),
    day(variants=[{"variant_id": "a", "impressions": 1, "clicks": 0}] * 2),
    day(variants=[{"variant_id": "a", "impressions": 1, "clicks": 0, "views": 3}]),
]
JSON = {"Content-Type": "application/json"}
OTHER_HEADERS = [
    {},
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/json; charset=utf-8"},
    {"Content-Type": "APPLICATION/JSON"},
    {"Content-Type": "application/merge-patch+json"},
    {**JSON, "X-Request-ID": "client-chosen.id"},
    {**JSON, "X-Request-ID": "not sane\tid"},
]


def answer(response) -> tuple:
    """What a client sees, but the request id the server made (a new one each time)."""
    headers = dict(response.headers)
    made = headers.pop("x-request-id", None)
    return response.status_code, response.content, headers, made is not None


NEW_DATABASE = []  # the test's new_database fixture (conftest), set by databases()


@pytest.fixture(autouse=True)
def databases(new_database):
    NEW_DATABASE[:] = [new_database]
    yield
    NEW_DATABASE.clear()


STORED = (
    "SELECT e.name, v.name, m.date, m.impressions, m.clicks FROM daily_metric AS m"
    " JOIN experiment AS e ON e.id = m.experiment_id JOIN variant AS v ON v.id = m.variant_id"
    " ORDER BY e.name, v.name"
)


def answers(settings, name: str, requests: list, fast: bool, keys=None, stored=None) -> list:
    """Send the requests in order to a new app on its own database; fast=False turns the
    fast path off, so FastAPI's route answers everything. `stored` gets the rows the
    database has then."""
    database = NEW_DATABASE[0](settings)
    app = create_app(database, keys or ApiKeys())
    if not fast:
        app.fast_post = None
    with TestClient(app, raise_server_exceptions=False) as client:
        found = [answer(client.post("/data", **sent(request))) for request in requests]
    if stored is not None:
        stored += query(database, STORED)
    return found


def sent(request: dict) -> dict:
    """A request's arguments; "chunks" are sent chunked (a new iterator each time)."""
    if "chunks" not in request:
        return request
    return {"content": iter(request["chunks"]), "headers": request["headers"]}


def assert_same_answers(settings, requests: list, keys=None) -> list[tuple]:
    """The same answers, and the same rows stored, with the fast path as without it."""
    stored_fast, stored_routed = [], []
    fast = answers(settings, "fast", requests, True, keys, stored_fast)
    routed = answers(settings, "routed", requests, False, keys, stored_routed)
    for request, one, other in zip(requests, fast, routed, strict=True):
        assert one == other, request
    assert stored_fast == stored_routed
    return fast


def test_good_bodies_get_the_routes_answers(settings):
    found = assert_same_answers(
        settings, [{"content": encoded(b), "headers": JSON} for b in GOOD_BODIES]
    )
    assert [status for status, *_ in found] == [200] * len(GOOD_BODIES)
    assert json.loads(found[0][1])["new_variants"] == ["control", "variant"]


def test_bad_bodies_get_the_routes_errors(settings):
    found = assert_same_answers(
        settings, [{"content": encoded(b), "headers": JSON} for b in BAD_BODIES]
    )
    assert {status for status, *_ in found} == {422}


@pytest.mark.parametrize("headers", OTHER_HEADERS)
def test_other_content_types_and_request_ids_get_the_routes_answers(settings, headers):
    requests = [{"content": encoded(b), "headers": headers} for b in (CONTRACT_POST, b"{")]
    assert_same_answers(settings, requests)


def test_a_client_request_id_is_returned_by_the_fast_path(settings):
    headers = {**JSON, "X-Request-ID": "client-chosen.id"}
    app = create_app(settings, ApiKeys())
    with TestClient(app) as client:
        response = client.post("/data", content=encoded(CONTRACT_POST), headers=headers)
    assert response.headers["x-request-id"] == "client-chosen.id"


def test_chunked_and_oversized_bodies_get_the_middlewares_answers(settings):
    settings = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, max_body_bytes=1024)
    )
    body = encoded(CONTRACT_POST)
    large = encoded(day(variants=arms(*[(1, 0)] * 30)))
    requests = [
        {"chunks": [body], "headers": JSON},
        {"content": large, "headers": JSON},
        {"chunks": [large], "headers": JSON},
    ]
    found = assert_same_answers(settings, requests)
    assert [status for status, *_ in found] == [200, 413, 413]


def test_keys_are_checked_as_the_middleware_checks_them(settings):
    body = encoded(CONTRACT_POST)
    requests = [
        {"content": body, "headers": JSON},
        {"content": body, "headers": {**JSON, "Authorization": "Bearer wrong"}},
        {"content": body, "headers": {**JSON, "Authorization": f"Basic {KEY}"}},
        {"content": body, "headers": {**JSON, "Authorization": f"Bearer {KEY}"}},
        {"content": body, "headers": {**JSON, "Authorization": f"bearer  {KEY} "}},
    ]
    found = assert_same_answers(settings, requests, ApiKeys([KEY]))
    assert [status for status, *_ in found] == [401, 401, 401, 200, 200]


def test_the_arm_cap_refusal_from_the_writer_is_the_routes(settings):
    settings = dataclasses.replace(
        settings, sampling=dataclasses.replace(settings.sampling, max_active_arms=2)
    )
    requests = [{"content": encoded(day(variants=arms((1, 0), (1, 0), (1, 0)))), "headers": JSON}]
    found = assert_same_answers(settings, requests)
    assert found[0][0] == 422


def writer_error(kind: str, engine: str) -> Exception:
    """The error each engine's driver raises for a busy lock or a storage fault."""
    if kind == "bug":
        return RuntimeError("a bug")
    if engine == "sqlite":
        return OperationalError({"busy": "database is locked", "storage": "disk I/O error"}[kind])
    import psycopg

    return {"busy": psycopg.errors.LockNotAvailable, "storage": psycopg.errors.DiskFull}[kind](
        "from the test"
    )


@pytest.mark.parametrize("kind, status", [("busy", 503), ("storage", 503), ("bug", 500)])
def test_a_failed_write_gets_the_routes_error(settings, engine, monkeypatch, kind, status):
    def failing(self, rows, cap=None):
        future = Future()
        future.set_exception(writer_error(kind, engine))
        return asyncio.wrap_future(future)

    monkeypatch.setattr(WriterThread, "submit", failing)
    found = assert_same_answers(settings, [{"content": encoded(CONTRACT_POST), "headers": JSON}])
    assert found[0][0] == status


def test_a_plain_post_is_stored_without_entering_fastapi(client, monkeypatch):
    def not_reached(*args):
        raise AssertionError("the request went through FastAPI")

    monkeypatch.setattr(fastapi.FastAPI, "__call__", not_reached)
    response = client.post("/data", json=CONTRACT_POST)
    assert response.status_code == 200
    assert response.json()["variants_stored"] == 2


def counted(status: str) -> tuple[float, float]:
    requests = metrics.REGISTRY.get_sample_value(
        "bandit_http_requests_total", {"route": "/data", "method": "POST", "status": status}
    )
    timed = metrics.REGISTRY.get_sample_value(
        "bandit_http_request_duration_seconds_count", {"route": "/data", "method": "POST"}
    )
    return requests or 0.0, timed or 0.0


@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_path_is_counted_and_timed_as_the_route_is(settings, fast):
    (ok, timed), (bad, _) = counted("200"), counted("422")
    requests = [{"content": encoded(b), "headers": JSON} for b in (CONTRACT_POST, b"{")]
    answers(settings, "counted", requests, fast)
    (ok_after, timed_after), (bad_after, _) = counted("200"), counted("422")
    assert (ok_after - ok, bad_after - bad, timed_after - timed) == (1, 1, 2)


def asgi_post(client, parts: list[bytes], declared: int) -> list[dict]:
    """POST /data straight to the app on its running loop, the body in these messages."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/data",
        "raw_path": b"/data",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % declared)],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def call():
        await client.app(scope, receive, send)

    client.portal.call(call)
    return sent


def test_a_body_in_several_messages_is_read_whole_or_refused_past_the_limit(settings):
    settings = dataclasses.replace(
        settings, server=dataclasses.replace(settings.server, max_body_bytes=1024)
    )
    body = encoded(CONTRACT_POST)
    large = encoded(day(variants=arms(*[(1, 0)] * 30)))
    with TestClient(create_app(settings)) as client:
        stored = asgi_post(client, [body[:10], body[10:40], body[40:]], len(body))
        refused = asgi_post(client, [large[:600], large[600:]], 1000)  # a length that lies
    assert stored[0]["status"] == 200
    assert json.loads(stored[1]["body"])["variants_stored"] == 2
    assert refused[0]["status"] == 413
