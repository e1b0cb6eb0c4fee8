"""The hot read path in front of FastAPI: GET (and HEAD) /allocation, /allocations and
/assign answered from the cache's current snapshot.

Routing, dependency injection and response classes cost more than uvicorn itself on these
endpoints, so the app checks first whether a request is a plain one it can answer from
memory: `GET /allocation?experiment_id=X` for an experiment it has, `GET /allocations`
with no query, `GET /assign?experiment_id=X&unit_id=U` (hashed here, no database).
Bytes and headers (ETag, Cache-Control) were encoded when the split was published;
If-None-Match gives a 304. Anything else (unknown experiment, `date=`, extra
parameters, percent-encoded ids, a cache still loading) goes to FastAPI, whose routes for
the same paths stay declared: they document the endpoints in OpenAPI, give every error its
usual JSON shape and answer known ones with the same bytes and headers (a test checks).

This runs before any middleware, so it applies the read-key check itself (the same pure
function the middleware uses); a request without a good key falls through to FastAPI,
whose middleware answers 401.
"""

from dataclasses import dataclass
from hashlib import blake2b
from json.encoder import encode_basestring_ascii as quoted

from fastapi import FastAPI
from starlette.datastructures import State

from api import metrics
from api.middleware import authorized

ALLOCATION_PATH = "/allocation"
BULK_PATH = "/allocations"
ASSIGN_PATH = "/assign"
POST_PATH = "/data"
FAST_PATHS = (ALLOCATION_PATH, BULK_PATH, ASSIGN_PATH)
MAX_UNIT_LENGTH = 256
QUERY_PREFIX = b"experiment_id="
READ_METHODS = ("GET", "HEAD")
# A copy is current for a second: every web process serves a publish within that. When
# the server fails, a cache may keep using the day's split for a day.
CACHE_CONTROL = b"max-age=1, stale-if-error=86400"
JSON = (b"content-type", b"application/json")


def query_key(experiment_id: str) -> bytes:
    """The exact query string of a plain request for this experiment."""
    return QUERY_PREFIX + experiment_id.encode()


def etag_of(body: bytes, suffix: bytes = b"") -> bytes:
    """A strong validator: the same bytes give the same tag in every process."""
    return b'"%s%s"' % (blake2b(body, digest_size=12).hexdigest().encode(), suffix)


@dataclass(frozen=True, slots=True)
class Served:
    """One response, encoded once: its body, validator, and the headers of 200 and 304."""

    body: bytes
    etag: bytes
    ok: list
    not_modified: list
    same: bytes = b""  # the validator of another encoding of the same content, if any


def served(body: bytes, etag: bytes | None = None, extra: tuple = (), same: bytes = b"") -> Served:
    etag = etag or etag_of(body)
    validators = [(b"etag", etag), (b"cache-control", CACHE_CONTROL), *extra]
    length = (b"content-length", b"%d" % len(body))
    return Served(body, etag, [length, JSON, *validators], validators, same)


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def matches(if_none_match: bytes, etag: bytes) -> bool:
    """If-None-Match compares weakly (RFC 9110 13.1.2): W/"x" matches "x"."""
    if if_none_match.strip() == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in if_none_match.split(b","))


def respond(found: Served, scope) -> tuple[int, list, bytes]:
    """(status, headers, body) for a GET or HEAD of `found`, honouring If-None-Match."""
    condition = header(scope, b"if-none-match")
    if condition is not None and (
        matches(condition, found.etag) or (found.same and matches(condition, found.same))
    ):
        return 304, found.not_modified, b""
    return 200, found.ok, b"" if scope["method"] == "HEAD" else found.body


def assign_query(query: bytes) -> tuple[str, str] | None:
    """(experiment, unit) of a plain `experiment_id=X&unit_id=U`: in that order, each once,
    nothing percent-encoded (FastAPI decodes the rest)."""
    if not query.startswith(QUERY_PREFIX) or b"%" in query or b"+" in query:
        return None
    experiment, found, unit = query[len(QUERY_PREFIX) :].partition(b"&unit_id=")
    if not found or not unit or b"&" in unit or b"&" in experiment:
        return None
    if len(unit) > MAX_UNIT_LENGTH or not unit.isascii():
        return None
    return experiment.decode(), unit.decode()


def assignment_body(assigner, unit_id: str) -> bytes:
    number = assigner.bucket(unit_id)
    return (
        f'{{"experiment_id":{quoted(assigner.experiment_id)},"unit_id":{quoted(unit_id)},'
        f'"variant_id":{quoted(assigner.variant_at(number))},"bucket":{number},'
        f'"seed":{quoted(assigner.seed)}}}'
    ).encode()


def assignment_response(assigner, unit_id: str, method: str) -> tuple[int, list, bytes]:
    body = assignment_body(assigner, unit_id)
    headers = [(b"content-length", b"%d" % len(body)), JSON, (b"cache-control", CACHE_CONTROL)]
    return 200, headers, b"" if method == "HEAD" else body


def assigned(snapshot, scope) -> tuple | None:
    """GET /assign from memory: the arm of one unit, hashed here (bandit_client.bucket)."""
    parsed = assign_query(scope["query_string"])
    assigner = snapshot.assigner(parsed[0]) if parsed else None
    if assigner is None:
        return None
    return assignment_response(assigner, parsed[1], scope["method"])


async def send_response(send, status: int, headers: list, body: bytes) -> None:
    # Fresh message dicts: a server or wrapper may keep or change what it is sent.
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


class PlainState(State):
    """app.state, each value also an attribute of its own: Starlette's State keeps them
    in a dict behind __getattr__, which Python calls only once the normal lookup has
    failed and built an AttributeError, 5,000 instructions (callgrind) for every read;
    the fast paths read it on every request."""

    def __setattr__(self, key, value) -> None:
        super().__setattr__(key, value)
        object.__setattr__(self, key, value)

    def __delattr__(self, key) -> None:
        super().__delattr__(key)
        object.__delattr__(self, key)

    __setitem__ = __setattr__
    __delitem__ = __delattr__


class AllocationApp(FastAPI):
    """FastAPI with the cache's plain reads, and plain writes of a day of metrics
    (api/fastpost.py), answered before routing when possible."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.state = PlainState()
        self.fast_post = None  # api/fastpost.py's FastPost, installed by create_app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] in READ_METHODS:
            answer = self.from_memory(scope)
            if answer is not None:
                metrics.fast_read(scope["path"], answer[0])
                await send_response(send, *answer)
                return
        elif self.fast_post and scope["type"] == "http" and scope["path"] == POST_PATH:
            # None: answered; else the receive FastAPI reads the body (if read) from.
            receive = await self.fast_post.answer(scope, receive, send)
            if receive is None:
                return
        await super().__call__(scope, receive, send)

    def from_memory(self, scope) -> tuple | None:
        """(status, headers, body), or None to let FastAPI answer."""
        path, snapshot = scope["path"], self.state.cache.snapshot
        if snapshot is None or path not in FAST_PATHS or not self.may_read(scope, path):
            return None
        if path == ALLOCATION_PATH:
            found = snapshot.allocation(scope["query_string"])
            return None if found is None else respond(found, scope)
        if not snapshot.complete.is_set():  # its bulk payload is being built: FastAPI waits
            return None
        if path == ASSIGN_PATH:
            return assigned(snapshot, scope)
        return None if scope["query_string"] else respond(snapshot.bulk.pick(scope), scope)

    def may_read(self, scope, path: str) -> bool:
        access = self.state.access
        if not access.needs_key("GET", path):
            return True
        return authorized(header(scope, b"authorization"), access.keys)
