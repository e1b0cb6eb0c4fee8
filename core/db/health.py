"""What every engine reports the same way: a database that cannot be used (DatabaseFault),
and this process's last storage fault, which /healthz shows until a write commits again."""

import logging
import threading

log = logging.getLogger("bandit.db")


class DatabaseFault(Exception):
    """The database cannot be used: missing, replaced, empty, corrupt or unreachable. The message
    names the file and the cause; nothing ever answers it by creating a new database."""


class BackupError(RuntimeError):
    """A backup could not be made; the message says why (nothing was written at the target)."""


class StorageHealth:
    """This process's last storage fault, until a write transaction commits again."""

    def __init__(self):
        self.fault: str | None = None

    def failed(self, cause: str) -> None:
        if cause != self.fault:
            log.error("storage fault: %s", cause)  # once per new cause, not per request
        self.fault = cause

    def problems(self) -> list[str]:
        fault = self.fault
        return [f"storage: {fault}"] if fault else []


health = StorageHealth()


class ThreadState(threading.local):
    """What a thread's connection is in the middle of, each with its default (so that
    reading one never raises AttributeError, whose message costs a write a few thousand
    instructions): `faulted`, a storage fault met in the running transaction; `stale`,
    the connection opened the file read-only and must be opened again before the next
    write (SQLite); `lost`, the error that rolled its transaction back (SQLite);
    `lock_wait_ms`, the lock wait to restore after this transaction (PostgreSQL)."""

    faulted = False
    stale = False
    lost = None
    lock_wait_ms = None
