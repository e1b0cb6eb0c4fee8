"""The read-path baseline: a bare ASGI app that answers every request with a constant body.

It does nothing a server could skip, so its rate is the limit of uvicorn on this machine
for a body of this size (BENCH_BODY_SIZE bytes).
"""

import os

BODY = b"x" * int(os.environ.get("BENCH_BODY_SIZE", "300"))
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(BODY))],
}
MESSAGE = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send(START)
    await send(MESSAGE)
