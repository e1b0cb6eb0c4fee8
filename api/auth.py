"""Who may write (and, if configured, read): bearer API keys from BANDIT_AUTH_API_KEYS.

The check is a pure function of the request's method, path and Authorization header, so
anything that answers requests before FastAPI (a fast path for GET /allocation, say) can
call `AccessPolicy.allows` and send `UNAUTHORIZED` itself. `RequireApiKey` applies it to
every request that reaches the app: every method except GET, HEAD and OPTIONS needs a key,
so a route added later is protected without doing anything.
"""

import json
from dataclasses import dataclass

from core.secrets import ApiKeys

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Open even when reads need a key: probes and the API's own documentation.
PUBLIC_PATHS = frozenset({"/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
CHALLENGE = b'Bearer realm="bandit-api"'


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
        return self.require_key_for_reads and path not in PUBLIC_PATHS

    def allows(self, method: str, path: str, header_value: bytes | str | None) -> bool:
        return not self.needs_key(method, path) or authorized(header_value, self.keys)

    def describe(self) -> str:
        """What /healthz reports: off, writes, or reads_and_writes."""
        if not self.enabled:
            return "off"
        return "reads_and_writes" if self.require_key_for_reads else "writes"


def unauthorized_body(header_value) -> bytes:
    problem = "missing" if bearer_token(header_value) is None else "wrong"
    message = f"{problem} API key: send the header Authorization: Bearer <key>"
    return json.dumps({"error": "unauthorized", "message": message}, separators=(",", ":")).encode()


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


async def send_unauthorized(send, header_value) -> None:
    body = unauthorized_body(header_value)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", CHALLENGE),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequireApiKey:
    """ASGI middleware: answer 401 before the app (or the request body) is touched."""

    def __init__(self, app, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and self.policy.needs_key(scope["method"], scope["path"]):
            value = header(scope, b"authorization")
            if not authorized(value, self.policy.keys):
                await send_unauthorized(send, value)
                return
        await self.app(scope, receive, send)
