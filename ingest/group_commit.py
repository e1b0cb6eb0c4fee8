"""Group commit: writes that queue up while one commits go into the next commit together.

With synchronous=FULL every commit waits for the disk, and that wait, not Python, bounds
how many POST /data a web process can store. Threads that arrive while a commit is under
way queue here; whichever thread gets the writer lock next stores every queued write in
one transaction, each inside its own savepoint, and commits once. So:

- a write is acknowledged only after the commit that holds it (durability unchanged);
- each write is still all or nothing: a write that fails rolls back to its savepoint and
  its thread gets the exception, while the others in the group commit;
- if the commit itself fails, every write in the group gets that error.

Threads queued on the writer lock are woken the moment it is free, whereas threads that
find SQLite's write lock taken sleep in its busy handler (steps of up to 100 ms). Writers
in other processes (the clock, the bulk loader) still queue on busy_timeout_ms.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.db import database, write_transaction


@dataclass
class Write:
    work: Callable[[], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class GroupCommit:
    def __init__(self):
        self._queue: list[Write] = []
        self._queue_lock = threading.Lock()
        self._writer = threading.Lock()

    def run(self, work: Callable[[], Any]):
        """Run work() inside a write transaction shared with the writes queued beside it."""
        write = Write(work)
        with self._queue_lock:
            self._queue.append(write)
        with self._writer:
            if not write.done:
                self._commit(self._take_queue())
        if write.error is not None:
            raise write.error
        return write.result

    def _take_queue(self) -> list[Write]:
        with self._queue_lock:
            group, self._queue = self._queue, []
        return group

    def _commit(self, group: list[Write]) -> None:
        try:
            with write_transaction():
                for write in group:
                    run_in_savepoint(write)
        except BaseException as exc:  # the commit failed: nothing in the group landed
            for write in group:
                write.result, write.error = None, write.error or exc
        finally:
            for write in group:
                write.done = True


def run_in_savepoint(write: Write) -> None:
    try:
        with database.atomic():  # nested in a transaction: a savepoint
            write.result = write.work()
    except Exception as exc:
        write.error = exc
