"""The two middlewares every request passes: API keys, then the body size limit.

Who may write (and, if configured, read): bearer API keys from BANDIT_AUTH_API_KEYS. The
check is a pure function of the request's method, path and Authorization header, so the
fast path for GET /allocation, which answers before the middleware, calls
`AccessPolicy.allows` too. `RequireApiKey` applies it to every request that reaches the
app: every method except GET, HEAD and OPTIONS needs a key, so a route added later is
protected without doing anything.

Request bodies over server.max_body_bytes get 413, declared length or not. A
Content-Length over the limit is refused before reading anything. A chunked body (no
Content-Length) is read as it streams and refused as soon as the count passes the limit,
so a client cannot make the server hold more than the limit in memory. A body within the
limit is handed to the app whole, as one message.
"""

from dataclasses import dataclass

from starlette.datastructures import Headers

from api.errors import error_response
from core.logs import KEY_NAME
from core.secrets import ApiKeys

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Open even when reads need a key: probes and the API's own documentation.
PUBLIC_PATHS = frozenset(
    {"/healthz", "/livez", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)
PUBLIC_PREFIX = "/docs/assets/"  # the documentation pages' scripts and styles
CHALLENGE = 'Bearer realm="bandit-api"'


def bearer_token(header_value: bytes | str | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if header_value is None:
        return None
    if isinstance(header_value, str):
        header_value = header_value.encode("latin-1", "replace")
    scheme, _, token = header_value.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        return None
    return token


def key_name(header_value: bytes | str | None, keys: ApiKeys) -> str | None:
    """The name of the configured key the header carries, or None."""
    token = bearer_token(header_value)
    return keys.name_of(token) if token is not None else None


def authorized(header_value: bytes | str | None, keys: ApiKeys) -> bool:
    """True when access control is off (no keys) or the header carries a configured key."""
    if not keys:
        return True
    token = bearer_token(header_value)
    return token is not None and keys.matches(token)


@dataclass(frozen=True)
class AccessPolicy:
    keys: ApiKeys
    require_key_for_reads: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def needs_key(self, method: str, path: str) -> bool:
        if not self.enabled:
            return False
        if method.upper() not in READ_METHODS:
            return True
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIX)
        return self.require_key_for_reads and not public

    def allows(self, method: str, path: str, header_value: bytes | str | None) -> bool:
        return not self.needs_key(method, path) or authorized(header_value, self.keys)

    def describe(self) -> str:
        """What /healthz reports: off, writes, or reads_and_writes."""
        if not self.enabled:
            return "off"
        return "reads_and_writes" if self.require_key_for_reads else "writes"


def unauthorized_message(header_value) -> str:
    problem = "missing" if bearer_token(header_value) is None else "wrong"
    return f"{problem} API key: send the header Authorization: Bearer <key>"


class RequireApiKey:
    """ASGI middleware: answer 401 before the app (or the request body) is touched."""

    def __init__(self, app, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.policy.needs_key(scope["method"], scope["path"]):
            value = Headers(scope=scope).get("authorization")
            name = key_name(value, self.policy.keys)
            if name is None:
                response = error_response(
                    "unauthorized",
                    unauthorized_message(value),
                    401,
                    headers={"WWW-Authenticate": CHALLENGE},
                )
                await response(scope, receive, send)
                return
            KEY_NAME.set(name)  # for the audit line of what this request changes
        await self.app(scope, receive, send)


def too_large(limit: int):
    # The rest of the body is unread: the connection cannot be reused.
    message = f"body: larger than the limit of {limit} bytes"
    return error_response("too_large", message, 413, headers={"Connection": "close"})


def ambiguous_framing():
    # RFC 9112 6.3: a request with both may be a smuggling attempt; answer and close, so a
    # request pipelined behind it is never read with the wrong framing.
    message = "body: both Content-Length and Transfer-Encoding were sent; send one"
    return error_response("bad_request", message, 400, headers={"Connection": "close"})


def declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def has_body(headers: Headers) -> bool:
    """HTTP/1.1: a request has a body only if it says so with one of these headers."""
    length = declared_length(headers)
    return "transfer-encoding" in headers or (length is not None and length > 0)


async def read_body(receive, limit: int, first=None) -> tuple[bytes | None, list]:
    """The whole body, or None once it passes limit; plus any non-body messages seen.
    `first`: a message the caller has already received."""
    chunks, size, other = [], 0, []
    while True:
        message, first = (await receive() if first is None else first), None
        if message["type"] != "http.request":
            other.append(message)
            return b"".join(chunks), other
        size += len(message.get("body", b""))
        if size > limit:
            return None, other
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), other


def replay(body: bytes, other: list, receive):
    """A receive callable that yields the buffered body once, then defers to the server."""
    pending = [{"type": "http.request", "body": body, "more_body": False}, *other]

    async def receive_again():
        if pending:
            return pending.pop(0)
        return await receive()

    return receive_again


class LimitBodySize:
    """ASGI middleware enforcing the body size limit (see the module docstring)."""

    def __init__(self, app, max_body_bytes: int):
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if "transfer-encoding" in headers and "content-length" in headers:
            await ambiguous_framing()(scope, receive, send)
            return
        length = declared_length(headers)
        if length is not None and length > self.limit:
            await too_large(self.limit)(scope, receive, send)
            return
        if not has_body(headers):
            await self.app(scope, receive, send)
            return
        body, other = await read_body(receive, self.limit)
        if body is None:
            await too_large(self.limit)(scope, receive, send)
            return
        await self.app(scope, replay(body, other, receive), send)
