"""Load generators for 127.0.0.1 only: wrk when installed, else a small asyncio client.

Both keep connections alive, pick a random request per request from the list given, stop
after a fixed duration, and report requests per second, p99 latency and non-200 count.
A request is a path (GET) or a (method, path, JSON body[, headers]) tuple; a 3xx (a 304
to If-None-Match) counts as an answer, not an error.
"""

import asyncio
import random
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p99_ms: float
    errors: int
    tool: str


def as_tuple(request) -> tuple[str, str, bytes | None, dict]:
    if isinstance(request, str):
        return "GET", request, None, {}
    method, path, body, *headers = request
    return method, path, body, (headers[0] if headers else {})


def lua_headers(body, headers: dict) -> str:
    fields = {**({"Content-Type": "application/json"} if body is not None else {}), **headers}
    return "{" + ",".join(f'["{k}"] = [==[{v}]==]' for k, v in fields.items()) + "}"


def lua_script(requests: list) -> str:
    items = []
    for method, path, body, headers in map(as_tuple, requests):
        text = "nil" if body is None else f"[==[{body.decode()}]==]"
        items.append(f'{{"{method}", "{path}", {lua_headers(body, headers)}, {text}}}')
    return (
        f"local requests = {{{','.join(items)}}}\n"
        "request = function()\n"
        "  local r = requests[math.random(#requests)]\n"
        "  return wrk.format(r[1], r[2], r[3], r[4])\n"
        "end\n"
    )


def raw_request(request) -> bytes:
    method, path, body, headers = as_tuple(request)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def parse_wrk(output: str) -> LoadResult:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE).groups()
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    failed = re.search(r"Socket errors:.*", output)
    errors = int(bad.group(1)) if bad else 0
    if failed:
        errors += sum(int(n) for n in re.findall(r"\d+", failed.group(0)))
    return LoadResult(rate, float(value) * UNITS[unit], errors, "wrk")


def run_wrk(port: int, paths: list[str], seconds: int, connections: int) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua_script(paths))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name]
    command.append(f"http://127.0.0.1:{port}")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    finally:
        Path(f.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    return parse_wrk(done.stdout)


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    return status


async def one_connection(port: int, paths: list[str], stop_at: float, latencies: list) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    requests = [raw_request(p) for p in paths]
    errors = 0
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(random.choice(requests))
            errors += await read_response(reader) >= 400
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return errors


async def python_load(port: int, paths: list[str], seconds: int, connections: int):
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    errors = await asyncio.gather(
        *(one_connection(port, paths, stop_at, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    return LoadResult(len(latencies) / elapsed, p99, sum(errors), "python-asyncio")


def run_load(port: int, paths: list[str], seconds: int, connections: int, tool: str = "auto"):
    """Load 127.0.0.1:port for `seconds`; wrk unless absent or tool='python'."""
    if tool == "wrk" or (tool == "auto" and shutil.which("wrk")):
        return run_wrk(port, paths, seconds, connections)
    return asyncio.run(python_load(port, paths, seconds, connections))
