"""Connections are bounded: `python -m api` closes sockets that never finish a request,
serves at most server.max_connections at once, raises its open-file limit, and logs a
failed accept once per interval. Loopback only; every socket count and wait is bounded."""

import http.client
import logging
import re
import socket
import time
from contextlib import ExitStack, closing
from pathlib import Path

import pytest

from api.connections import OncePerInterval
from tests.processes import HOST, child_env

# Runs `python -m api` after setting its open-file limit, as a shell's ulimit would.
WITH_FILE_LIMIT = (
    "import resource, runpy, sys;"
    " resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}));"
    " sys.argv = ['api']; runpy.run_module('api', run_name='__main__')"
)


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_web(procs, tmp_path, soft=None, hard=None, **settings):
    port = free_port()
    env = child_env(tmp_path / "bandit.db", BANDIT_SERVER_PORT=port, **settings)
    args = ["-m", "api"] if soft is None else ["-c", WITH_FILE_LIMIT.format(soft=soft, hard=hard)]
    web = procs.start(args, env)
    web.wait_for_line(r"Uvicorn running on")
    web.port = port
    return web


def get(port: int, path: str = "/healthz") -> int:
    with closing(http.client.HTTPConnection(HOST, port, timeout=10)) as conn:
        conn.request("GET", path)
        return conn.getresponse().status


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed the socket (EOF or reset) within its timeout."""
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.processes
def test_connections_that_never_finish_their_headers_are_closed(tmp_path, procs):
    web = start_web(procs, tmp_path, BANDIT_SERVER_HEADER_TIMEOUT_SECONDS=1)
    with ExitStack() as stack:
        slow = [
            stack.enter_context(socket.create_connection((HOST, web.port), timeout=10))
            for _ in range(50)
        ]
        silent = stack.enter_context(socket.create_connection((HOST, web.port), timeout=10))
        for sock in slow:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)
        for sock in slow[:10]:  # trickling bytes does not keep a connection
            sock.sendall(b"X-A: b\r\n")
        assert get(web.port) == 200  # meanwhile everyone else is served
        assert [closed_by_server(sock) for sock in [*slow, silent]] == [True] * 51


@pytest.mark.processes
def test_a_body_that_stops_arriving_is_closed_and_stores_nothing(tmp_path, procs):
    web = start_web(procs, tmp_path, BANDIT_SERVER_HEADER_TIMEOUT_SECONDS=1)
    with socket.create_connection((HOST, web.port), timeout=10) as sock:
        sock.sendall(
            b"POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + b'{"experiment_id": "slow", '
        )
        assert closed_by_server(sock)
    assert get(web.port, "/allocation?experiment_id=slow") == 404


@pytest.mark.processes
def test_a_request_in_progress_is_not_cut_by_the_header_timeout(tmp_path, procs):
    web = start_web(procs, tmp_path, BANDIT_SERVER_HEADER_TIMEOUT_SECONDS=1)
    with closing(http.client.HTTPConnection(HOST, web.port, timeout=10)) as conn:
        for _ in range(3):  # keep-alive requests spaced under the timeout
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            time.sleep(0.6)


@pytest.mark.processes
def test_requests_past_max_connections_get_a_503(tmp_path, procs):
    web = start_web(procs, tmp_path, BANDIT_SERVER_MAX_CONNECTIONS=5)
    with ExitStack() as stack:
        for _ in range(5):
            stack.enter_context(socket.create_connection((HOST, web.port), timeout=10))
        time.sleep(0.3)  # the server has accepted them
        assert get(web.port) == 503
    time.sleep(0.3)
    assert get(web.port) == 200


@pytest.mark.processes
def test_the_open_file_limit_is_raised_to_the_hard_limit_at_start(tmp_path, procs):
    web = start_web(procs, tmp_path, soft=256, hard=4096)
    limits = Path(f"/proc/{web.process.pid}/limits").read_text()
    assert re.search(r"Max open files\s+4096\s+4096", limits), limits
    assert "open-file limit raised from 256 to 4096" in web.output


@pytest.mark.processes
def test_accept_errors_when_sockets_run_out_are_logged_once_per_interval(tmp_path, procs):
    web = start_web(procs, tmp_path, soft=64, hard=64)
    with ExitStack() as stack:
        for _ in range(100):  # more than the server's 64 descriptors
            stack.enter_context(socket.create_connection((HOST, web.port), timeout=10))
        time.sleep(3.5)  # asyncio tries again every second
    assert web.output.count("out of system resource") <= 1


def test_a_repeated_log_message_passes_once_per_interval_with_a_count():
    passed = OncePerInterval(interval_s=60)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, None, None)

    accept = "socket.accept() out of system resource\nsocket: <fd=9>"
    assert [passed.filter(record(accept)) for _ in range(5)] == [True] + [False] * 4
    assert passed.filter(record("another message")) is True
    passed.last = {key: seen - 61 for key, seen in passed.last.items()}  # a minute on
    again = record(accept)
    assert passed.filter(again) is True
    assert again.getMessage() == "socket.accept() out of system resource (4 more like it held back)"


class Recorded:
    """A transport that records what it is asked to do."""

    def __init__(self):
        self.calls, self.closing = [], False

    def write(self, data):
        self.calls.append(("write", bytes(data)))

    def close(self):
        self.calls.append(("close",))
        self.closing = True

    def is_closing(self):
        return self.closing

    def pause_reading(self):
        self.calls.append(("pause",))

    def resume_reading(self):
        self.calls.append(("resume",))

    def get_extra_info(self, name):
        return ("127.0.0.1", 1) if name == "peername" else None


def test_a_turns_writes_go_out_as_one_send_and_closing_sends_them_first():
    import asyncio

    from api.connections import Coalescing

    async def main():
        inner = Recorded()
        transport = Coalescing(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"body")
        assert inner.calls == []  # not yet: at the end of this turn
        await asyncio.sleep(0)
        assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\n\r\nbody")]
        transport.write(b"last")
        transport.close()
        await asyncio.sleep(0)
        assert inner.calls[1:] == [("write", b"last"), ("close",)]
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
        transport.write(b"after close")
        await asyncio.sleep(0)
        assert inner.calls[-1] == ("close",)  # a closed transport is sent nothing

    asyncio.run(main())


def test_what_uvicorn_asks_of_a_transport_on_every_request_is_passed_on_at_once(monkeypatch):
    """is_closing and the reading switches are the wrapper's own methods, not found after a
    failed lookup (which builds an AttributeError each time)."""
    import asyncio

    from api.connections import Coalescing

    async def main():
        inner = Recorded()
        transport = Coalescing(inner, asyncio.get_running_loop())
        monkeypatch.setattr(Coalescing, "__getattr__", lambda self, name: pytest.fail(name))
        transport.pause_reading()
        transport.resume_reading()
        assert transport.is_closing() is False
        assert inner.calls == [("pause",), ("resume",)]

    asyncio.run(main())
