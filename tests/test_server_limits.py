"""Body limits and keys against the real server: bytes are counted as they stream."""

import socket

import pytest

from tests.processes import HOST, child_env

MIB = 1024 * 1024
HEAD = "POST /data HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
AUTHORISED = HEAD + "Authorization: Bearer k-123456\r\n"


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def read_answer(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def send_chunked(port: int, total: int, chunk: int = 64 * 1024) -> int:
    """Stream an authorised chunked body (no Content-Length); the status of the answer."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall((AUTHORISED + "Transfer-Encoding: chunked\r\n\r\n").encode())
        sent = 0
        try:
            while sent < total:
                sock.sendall(f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n")
                sent += chunk
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed while we were still sending
        return status_of(read_answer(sock))


@pytest.fixture
def server(tmp_path, procs):
    return procs.server(child_env(tmp_path / "bandit.db", BANDIT_AUTH_API_KEYS="k-123456"))


@pytest.mark.processes
def test_chunked_body_without_length_over_the_limit_is_refused_with_413(server):
    assert send_chunked(server.port, 4 * MIB) == 413


@pytest.mark.processes
def test_chunked_body_within_the_limit_gets_through_to_validation(server):
    assert send_chunked(server.port, 128 * 1024) == 422  # whitespace only: not JSON
    server.kill()
    assert "k-123456" not in server.output, "an API key reached the server log"


@pytest.mark.processes
def test_declared_oversize_body_is_refused_before_it_is_sent(server):
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        head = AUTHORISED + f"Content-Length: {8 * MIB}\r\n\r\n"
        sock.sendall(head.encode())
        assert status_of(read_answer(sock)) == 413


@pytest.mark.processes
def test_write_without_key_is_refused_before_the_body_is_read(server):
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall((HEAD + f"Content-Length: {MIB}\r\n\r\n").encode())
        answer = read_answer(sock)
    assert status_of(answer) == 401
    assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")
