"""POST /data's writes stored by a process of their own: the web process's writer.

In one process the event loop's thread and the group commit's writer thread share one
GIL. The writer gives it up around every SQLite call (BEGIN, the upsert, COMMIT and its
fsync) and must take it back after each, while the loop holds it for whole requests, so a
group of writes waited for the GIL several times (in the same benchmark runs the writer
thread gave 0.72 and 0.84 of the POSTs per second of the writer process; bench/README.md).
With server.writer_process (the default) each web process starts one child,
`python -m ingest.writer_process`, which runs the same group commit (ingest/group_commit.py)
on its own connection, and the loop only hands it days and reads back outcomes:

- The web process sends the writes that came since its last frame as one frame (a
  4-byte length and a pickle of [(key, day, max_arms), ...], plain values: a day is its
  experiment id, its date's text and its (variant_id, impressions, clicks)) down a pipe,
  one frame in flight at a time: what comes while the child commits goes in the next
  frame, sent as soon as the answer is read. The child, one thread, commits each frame
  as one group (serve_writes): reposts of arms it has seen committed as one upsert of
  their rows, anything else with the same code as the writer thread
  (GroupCommit.serve_group).
- After each group's commit the child sends one frame back: every write's outcome
  (its StoreResult's fields, or what refused it) and the child's storage fault, if any.
  The loop reads it when the pipe is readable and settles each write's future. So a
  write is acknowledged only after its commit, as before.
- What refused a write crosses the pipe as a WriteRefused with the kind the web process's
  error handlers answer (busy or storage: 503; a refused change: 422; a bug: 500) and the
  database's own words. A storage fault the child met, or the commit that cleared it, is
  mirrored into the web process's health (/healthz).
- The child exits when its pipe closes: when the web process stops (also when it is
  killed: the pipe closes with it), after the writes it already took are committed. If
  the child dies, the writes it had not answered get a 503 saying they may or may not
  be stored (a repost of the same day replaces the same rows, so retrying is safe), and
  the next write starts a new child.

With server.writer_process = false the writes go to a writer thread of the web process
(ingest.metrics.queue_rows), as the bulk loader's and the tests' in-process writes do.
"""

import asyncio
import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from itertools import count

from core.db import bound, health, is_busy, storage_fault
from core.experiments import InvalidChange
from core.schema import utcnow
from ingest.group_commit import ALONE, IDLE_CLOSE_S, GroupCommit, run_jointly
from ingest.metrics import (
    DayWrite,
    StoreResult,
    known_values,
    queue_rows,
    rows_of,
    upsert_values,
)

log = logging.getLogger("bandit.api")
HEADER = struct.Struct("<I")
READ_SIZE = 1 << 16  # under malloc's mmap threshold: a larger buffer costs an mmap per read
RESTART_AFTER_S = 1.0  # a child that died is started again at most once a second
STOP_WAIT_S = 30.0  # how long a stopping web process waits for its child's last commits
# What a write hears when its writer process dies: sent to it, or still waiting to be sent.
LOST = (
    "the writer process stopped before it answered; the write may or may not be stored: "
    "retry it (a repost of the same day replaces the same rows)"
)
NOT_SENT = (
    "the writer process stopped before it was sent the write; nothing was stored, retry it shortly"
)


class WriteRefused(Exception):
    """A write the writer process did not store, and why: `kind` is "busy" or "storage"
    (503), "stopped" (503: the child died before it answered) or "error" (a bug: 500)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def frame(value) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def frames(buffer: bytearray) -> list:
    """Take every whole frame off the front of buffer."""
    found, at = [], 0
    while len(buffer) - at >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer, at)
        if len(buffer) - at - HEADER.size < size:
            break
        found.append(pickle.loads(buffer[at + HEADER.size : at + HEADER.size + size]))
        at += HEADER.size + size
    del buffer[:at]
    return found


def portable(error: BaseException | None):
    """What refused a write, as plain values that cross the pipe (the database's own
    exception may not: pickling drops the driver error peewee wraps)."""
    if error is None:
        return None
    if isinstance(error, InvalidChange):
        return ("invalid", error.field, error.message)
    if is_busy(error):
        return ("busy", str(error))
    cause = storage_fault(error)
    if cause:
        return ("storage", cause)
    return ("error", f"{type(error).__name__}: {error}")


def rebuilt(refusal) -> Exception:
    if refusal[0] == "invalid":
        return InvalidChange(refusal[1], refusal[2])
    return WriteRefused(refusal[0], refusal[1])


def plain(day) -> tuple:
    """A validated day of metrics (ingest.validation.DailyMetrics) as values that pickle
    fast (no date object, no model): the child's ingest.metrics.DayWrite."""
    arms = [(v.variant_id, v.impressions, v.clicks) for v in day.variants]
    return day.experiment_id, day.date.isoformat(), arms


class WriterProcess:
    """The web process's side: starts the child, sends it writes, settles their futures.
    Used from one event loop (the web process's), which `start` binds it to. Nothing here
    blocks the loop: what the pipe cannot take at once waits for it to drain."""

    def __init__(self, database_settings):
        self.settings = database_settings
        self.loop: asyncio.AbstractEventLoop | None = None
        self.process: subprocess.Popen | None = None
        self.to_child = self.from_child = None
        self.keys = count()
        self.pending: dict[int, asyncio.Future] = {}
        self.outgoing: list = []
        self.in_flight = False  # a frame sent whose group the child has not answered yet
        self.unsent = bytearray()
        self.buffer = bytearray()
        self.stopped_at = 0.0
        self.last_exit: int | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.close()  # a child started on another loop (an app started again)
        to_read, to_child = os.pipe()
        from_child, to_write = os.pipe()
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", "ingest.writer_process", str(to_read), str(to_write)]
        try:
            self.process = subprocess.Popen(command, env=env, pass_fds=(to_read, to_write))
        finally:
            os.close(to_read)
            os.close(to_write)
        self.loop, self.to_child, self.from_child = loop, to_child, from_child
        os.set_blocking(to_child, False)
        os.set_blocking(from_child, False)
        loop.add_reader(from_child, self.readable)
        self.send(frame(self.settings))

    def submit(self, day, max_arms: int | None) -> asyncio.Future:
        """A future of the StoreResult of this validated day's rows, settled after their
        commit."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self.process is None or loop is not self.loop:
            self.close()
            if time.monotonic() - self.stopped_at < RESTART_AFTER_S:
                future.set_exception(self.not_running())
                return future
            self.start(loop)
            if self.process is None:  # it died at once: its pipe refused the settings
                future.set_exception(self.not_running())
                return future
        key = next(self.keys)
        self.pending[key] = future
        if not self.outgoing and not self.in_flight:
            loop.call_soon(self.flush)
        self.outgoing.append((key, plain(day), max_arms))
        return future

    def not_running(self) -> WriteRefused:
        return WriteRefused(
            "stopped",
            f"the writer process is not running (it exited with status {self.last_exit}); "
            "nothing was stored, retry shortly",
        )

    def flush(self) -> None:
        """The writes that came since the last frame, to the child in one frame. One frame
        is in flight at a time: what comes while the child commits goes with the next,
        sent as soon as its answer is read (a wake-up of the child costs more than a
        write: fewer, larger frames make fewer, larger groups)."""
        if self.in_flight or self.process is None:
            return
        batch, self.outgoing = self.outgoing, []
        if batch:
            self.in_flight = True
            self.send(frame(batch))

    def send(self, data: bytes) -> None:
        if self.unsent:  # the pipe is full: after what waits already
            self.unsent += data
            return
        try:
            sent = os.write(self.to_child, data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the child is gone
            self.gone()
            return
        if sent < len(data):
            self.unsent += data[sent:]
            self.loop.add_writer(self.to_child, self.writable)

    def writable(self) -> None:
        try:
            sent = os.write(self.to_child, self.unsent)
        except BlockingIOError:
            return
        except OSError:
            self.gone()
            return
        del self.unsent[:sent]
        if not self.unsent:
            self.loop.remove_writer(self.to_child)

    def readable(self) -> None:
        try:
            chunk = os.read(self.from_child, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.gone()
            return
        self.buffer += chunk
        answered = frames(self.buffer)
        for outcomes, fault in answered:
            self.settle(outcomes, fault)
        if answered:
            self.in_flight = False
            self.flush()

    def settle(self, outcomes: list, fault: str | None) -> None:
        if fault:
            health.failed(fault)
        elif any(refusal is None for _, _, refusal in outcomes):
            health.fault = None  # a write committed: as write_transaction clears it
        for key, result, refusal in outcomes:
            future = self.pending.pop(key, None)
            if future is None or future.done():
                continue
            if refusal is None:
                future.set_result(StoreResult(*result))
            else:
                future.set_exception(rebuilt(refusal))

    def gone(self) -> None:
        """The child died: fail what it had not answered."""
        if self.process is None:
            return
        self.last_exit = self.process.poll()
        if self.last_exit is None:
            self.process.kill()
            self.last_exit = self.process.wait()
        log.error("the writer process exited with status %s", self.last_exit)
        self.detach()
        # The writes waiting for the next frame were never sent: they go with the rest, or
        # the next child would never be sent a frame (a flush is due only when none wait).
        unsent = {key for key, _, _ in self.outgoing}
        self.outgoing = []
        pending, self.pending = self.pending, {}
        for key, future in pending.items():
            if not future.done():
                future.set_exception(WriteRefused("stopped", NOT_SENT if key in unsent else LOST))

    def detach(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            for fd, remove in (
                (self.from_child, self.loop.remove_reader),
                (self.to_child, self.loop.remove_writer),
            ):
                if fd is not None:
                    remove(fd)
        for fd in (self.to_child, self.from_child):
            if fd is not None:
                os.close(fd)
        self.to_child = self.from_child = None
        self.process = None
        self.in_flight = False
        self.unsent.clear()
        self.buffer.clear()
        self.stopped_at = time.monotonic()

    def close(self) -> None:
        """Stop the child: it gets what is still unsent, commits it, answers, and exits
        when its pipe closes."""
        if self.process is None:
            return
        batch, self.outgoing = self.outgoing, []
        if batch:  # also with a frame in flight: the child answers all before it exits
            self.send(frame(batch))
        process, fd = self.process, self.to_child
        if self.loop is not None and not self.loop.is_closed():
            self.loop.remove_writer(fd)
        os.set_blocking(fd, True)
        with contextlib.suppress(OSError):  # a child already gone
            os.write(fd, self.unsent) if self.unsent else None
        self.unsent.clear()
        os.close(fd)
        self.to_child = None
        try:
            process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.drain()
        self.last_exit = process.returncode
        self.detach()

    def drain(self) -> None:
        """The outcomes the child sent before it exited."""
        os.set_blocking(self.from_child, True)
        while chunk := os.read(self.from_child, READ_SIZE):
            self.buffer += chunk
        for outcomes, fault in frames(self.buffer):
            self.settle(outcomes, fault)


class WriterThread:
    """server.writer_process = false: the writes go to this process's writer thread."""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        pass

    def submit(self, day, max_arms: int | None) -> asyncio.Future:
        return queue_rows(rows_of(day), max_arms, asyncio.get_running_loop().create_future())

    def close(self) -> None:
        pass


def writes_for(settings):
    """Where a web process with these settings sends POST /data's writes."""
    if settings.server.writer_process:
        return WriterProcess(settings.database)
    return WriterThread()


# The child's side.


class Slot:
    """A write's outcome in the child: a future for the group commit, settled through the
    channel (its "loop"), which sends a whole group's outcomes in one frame."""

    __slots__ = ("channel", "key", "outcome")

    def __init__(self, channel: "Channel", key: int):
        self.channel, self.key, self.outcome = channel, key, None

    def get_loop(self) -> "Channel":
        return self.channel

    def done(self) -> bool:
        return self.outcome is not None

    def set_result(self, result) -> None:
        plain = (result.rows, result.new_experiments, result.new_variants)
        self.outcome = (self.key, plain, None)

    def set_exception(self, error: BaseException) -> None:
        self.outcome = (self.key, None, portable(error))


class Channel:
    """The child's answers to the web process: one frame per group."""

    def __init__(self, fd: int):
        self.fd = fd

    def call_soon_threadsafe(self, settle_all, settled: list) -> None:
        settle_all(settled)
        self.send([f.outcome for f, _, _ in settled])

    def send(self, outcomes: list) -> None:
        """One frame of outcomes, (key, StoreResult's fields or None, refusal or None)."""
        data = memoryview(frame((outcomes, health.fault)))
        while data:
            data = data[os.write(self.fd, data) :]


def serve(from_web: int, to_web: int) -> int:
    """The child: take the web process's writes as they come, a group at a time, in one
    thread (no GIL to share), until its end of the pipe closes."""
    from core.migrations import attach_database

    logging.disable(logging.ERROR)  # the web process logs what this one reports
    # A signal to the process group (Ctrl-C, a supervisor stopping the service) is the web
    # process's to act on: it answers the writes in flight, then closes the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pipe = Pipe(from_web)
    received = pipe.receive(None)
    if not received:
        return 0  # closed before it sent anything
    settings, *batches = received
    attach_database(settings)
    writes, channel = GroupCommit(), Channel(to_web)
    while True:
        if not batches:
            batches = pipe.receive(IDLE_CLOSE_S)
            if batches is None:
                writes.idle()
                batches = pipe.receive(None)
        if not batches:
            return 0  # the web process closed the pipe, and every write is answered
        serve_writes([w for batch in batches for w in batch], writes, channel)
        batches = []


def serve_writes(received: list, writes, channel: "Channel") -> None:
    """Commit the writes that came together, [(key, day, max_arms), ...], as one group
    and answer them in one frame. Most are reposts of arms the writer has seen: then they
    are one upsert of all their rows, taken straight from the days, with no object per
    write (the child's Python cost per write was twice the database's, callgrind of its
    loop, bench/README.md); else, or when that upsert fails for one write's sake, the
    group commit runs them as it runs any group."""
    now, values = bound(utcnow()), []
    try:
        writes.connect()
        known = all(known_values(writes.known, day, now, values) for _, day, _ in received)
    except Exception:  # no connection: serve_group meets it again, and tells every write
        known = False
    if known:
        error = run_jointly(upsert_values, values)
        if error is not ALONE:
            refusal = portable(error)
            channel.send(
                [
                    (key, None if error else (len(day[2]), [], []), refusal)
                    for key, day, _ in received
                ]
            )
            return
    # New arms, or a write that is wrong: each write in its savepoint (ran_jointly would
    # find the same and fail).
    group = [
        (DayWrite(*day, cap, writes.known, now), Slot(channel, key)) for key, day, cap in received
    ]
    writes.serve_group(group, jointly=False)


class Pipe:
    """The child's end of the web process's writes."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.closed = fd, bytearray(), False

    def receive(self, timeout: float | None) -> list | None:
        """The whole frames that come within timeout seconds (None: wait for one; 0: only
        those already here): [] once the web process's end is closed, None if none came."""
        while True:
            found = frames(self.buffer)
            if found or self.closed:
                return found
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, READ_SIZE)
            self.buffer += chunk
            self.closed = not chunk


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2])))
