"""Bounds on the web process's connections, which uvicorn leaves open-ended.

- A client that opens a connection and never finishes sending a request's headers (a
  slowloris), or stops half-way through a body, would hold its socket forever: uvicorn
  times out only idle keep-alive connections. `ClientTimeout` closes a connection that
  has not started a request within server.header_timeout_seconds of opening or of its
  last response, or whose body has not moved for that long.
- server.max_connections is uvicorn's limit_concurrency: past it, requests get a 503.
- The open-file limit is raised to the hard limit at start, so sockets run out later.
- When they do run out anyway, the event loop logs every failed accept; the asyncio
  logger is filtered to one line per message per interval, with a count of the rest.
- A response goes out in one send (`Coalescing`), not one for its head and one for its
  body.
"""

import logging
import resource
import time

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from core.settings import load_settings

log = logging.getLogger("bandit.api")
REPEAT_INTERVAL_S = 60.0
MAX_REMEMBERED = 1000  # distinct messages held back at once


class ClientTimeout(AutoHTTPProtocol):
    """uvicorn's HTTP protocol, closing a connection that starts no request for
    server.header_timeout_seconds, or whose request body stops arriving for that long; a
    request the app is working on (or reading slowly: the server has paused reading) is
    left alone. uvicorn loads it by name in each worker process, which reads the setting
    itself on its first connection."""

    timeout_s: float | None = None

    @classmethod
    def seconds(cls) -> float:
        if cls.timeout_s is None:
            cls.timeout_s = float(load_settings().server.header_timeout_seconds)
        return cls.timeout_s

    def connection_made(self, transport) -> None:
        super().connection_made(Coalescing(transport, self.loop))
        self._received = self._seen_received = 0
        self._seen_cycle = None
        self._watch = self.loop.call_later(self.seconds(), self._check_progress)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)

    def _check_progress(self) -> None:
        if self._no_new_request() or self._body_stalled():
            self.transport.close()
            return
        self._seen_cycle, self._seen_received = self.cycle, self._received
        self._watch = self.loop.call_later(self.seconds(), self._check_progress)

    def _no_new_request(self) -> bool:
        cycle = self.cycle
        waiting = cycle is None or cycle.response_complete
        return waiting and cycle is self._seen_cycle

    def _body_stalled(self) -> bool:
        cycle = self.cycle
        reading = cycle is not None and not cycle.response_complete and cycle.more_body
        idle = self._received == self._seen_received and not self.flow.read_paused
        return reading and idle and cycle is self._seen_cycle

    def connection_lost(self, exc) -> None:
        self._watch.cancel()
        super().connection_lost(exc)


class Coalescing:
    """The connection's transport, its writes of one turn of the loop sent as one: uvicorn
    writes a response's status line and headers, then its body, each a send() of its own
    (a system call, and a packet, apiece). The first write of a turn schedules the send
    for the end of the turn; closing sends what waits first; everything else is the
    transport's own."""

    __slots__ = ("loop", "pending", "transport")

    def __init__(self, transport, loop):
        self.transport, self.loop, self.pending = transport, loop, []

    def write(self, data) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(data)

    def flush(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    # What uvicorn calls on every request, passed on at once: anything else reaches
    # __getattr__, which Python calls only after a failed lookup has built an
    # AttributeError (5,000 instructions, callgrind).
    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def __getattr__(self, name):
        return getattr(self.transport, name)


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # some systems refuse an unlimited hard limit
        log.warning("could not raise the open-file limit from %d: %s", soft, exc)
        return soft
    log.warning("open-file limit raised from %d to %d", soft, hard)
    return hard


class OncePerInterval(logging.Filter):
    """Pass a message (by its first line) at most once per interval, and say how many
    like it were held back in between."""

    def __init__(self, interval_s: float = REPEAT_INTERVAL_S):
        super().__init__()
        self.interval_s = interval_s
        self.last: dict[str, float] = {}
        self.held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = record.getMessage().split("\n", 1)[0]
        now = time.monotonic()
        if now - self.last.get(key, -self.interval_s) < self.interval_s:
            self.held[key] = self.held.get(key, 0) + 1
            return False
        if len(self.last) >= MAX_REMEMBERED:  # messages that name a task or an address
            self.forget_before(now - self.interval_s)
        self.last[key] = now
        held = self.held.pop(key, 0)
        if held:
            record.msg, record.args = f"{key} ({held} more like it held back)", None
            record.exc_info = None
        return True

    def forget_before(self, moment: float) -> None:
        for key in [k for k, seen in self.last.items() if seen < moment]:
            del self.last[key]
            self.held.pop(key, None)


def bound_connections(server) -> dict:
    """What the process needs before uvicorn starts, and uvicorn's options for it."""
    raise_open_file_limit()
    logging.getLogger("asyncio").addFilter(OncePerInterval())
    return {"http": f"{__name__}:ClientTimeout", "limit_concurrency": server.max_connections}
