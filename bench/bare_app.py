"""The HTTP baselines: bare ASGI apps that answer every request with a constant body.

`app` does nothing a server could skip, so its rate is the limit of uvicorn on this
machine for a body of this size (BENCH_BODY_SIZE bytes); `post_app` also reads and parses
the request's JSON body.
"""

import json
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


# The write-path baseline (bench/write_path.py): reads the whole request body and parses it
# as JSON, as any JSON API must, then answers with a constant body of the size of a
# POST /data answer. No validation, no storage: the limit of uvicorn plus json.loads.
POST_BODY = b"x" * int(os.environ.get("BENCH_POST_ANSWER_SIZE", "80"))
POST_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(POST_BODY)),
    ],
}
POST_MESSAGE = {"type": "http.response.body", "body": POST_BODY}


async def post_app(scope, receive, send):
    if scope["type"] == "lifespan":
        await app(scope, receive, send)
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    json.loads(b"".join(chunks))
    await send(POST_START)
    await send(POST_MESSAGE)
