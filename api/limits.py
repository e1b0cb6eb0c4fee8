"""Request bodies over server.max_body_bytes get 413, declared length or not.

A Content-Length over the limit is refused before reading anything. A chunked body (no
Content-Length) is read as it streams and refused as soon as the count passes the limit,
so a client cannot make the server hold more than the limit in memory. A body within the
limit is handed to the app whole, as one message.
"""

import json

TOO_LARGE = 413


def too_large_body(limit: int) -> bytes:
    message = f"body: larger than the limit of {limit} bytes"
    return json.dumps({"error": "too_large", "message": message}, separators=(",", ":")).encode()


def header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value
    return None


def declared_length(scope) -> int | None:
    value = header(scope, b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def has_body(scope) -> bool:
    """HTTP/1.1: a request has a body only if it says so with one of these headers."""
    length = declared_length(scope)
    chunked = header(scope, b"transfer-encoding") is not None
    return chunked or (length is not None and length > 0)


async def send_too_large(send, limit: int) -> None:
    body = too_large_body(limit)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The rest of the body is unread: the connection cannot be reused.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": TOO_LARGE, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive, limit: int) -> tuple[bytes | None, list]:
    """The whole body, or None once it passes limit; plus any non-body messages seen."""
    chunks, size, other = [], 0, []
    while True:
        message = await receive()
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
        length = declared_length(scope)
        if length is not None and length > self.limit:
            await send_too_large(send, self.limit)
            return
        if not has_body(scope):
            await self.app(scope, receive, send)
            return
        body, other = await read_body(receive, self.limit)
        if body is None:
            await send_too_large(send, self.limit)
            return
        await self.app(scope, replay(body, other, receive), send)
