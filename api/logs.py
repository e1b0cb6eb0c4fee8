"""The request id: taken from the client's X-Request-ID (when it is a sane token) or made,
set for the request's log lines, and returned in the response's X-Request-ID.

The fast path answers plain GETs and HEADs of /allocation, /allocations and /assign before
any middleware, and their FastAPI routes must answer with the same bytes and headers, so
those reads carry no request id either way.
"""

import itertools
import os
import re

from starlette.datastructures import Headers, MutableHeaders

from api.fastpath import FAST_PATHS, READ_METHODS
from core.logs import REQUEST_ID

HEADER = "x-request-id"
# What a proxy or client may send: a log line must not be forged with newlines or bloated.
SANE = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def fast_read(scope) -> bool:
    return scope["method"] in READ_METHODS and scope["path"] in FAST_PATHS


class RequestIds:
    """Ids of 32 hex digits, as uuid4().hex, for a fifth of its cost: a random prefix per
    process (drawn again in a forked child) and a counter."""

    def __init__(self):
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.prefix, self.numbers = os.urandom(8).hex(), itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.numbers):016x}"


IDS = RequestIds()


def request_id(sent: str | None) -> str:
    return sent if sent is not None and SANE.fullmatch(sent) else IDS.next()


class RequestId:
    """ASGI middleware: sets REQUEST_ID for the request and returns it as X-Request-ID."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or fast_read(scope):
            await self.app(scope, receive, send)
            return
        value = request_id(Headers(scope=scope).get(HEADER))
        REQUEST_ID.set(value)

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = value
            await send(message)

        await self.app(scope, receive, send_with_id)
