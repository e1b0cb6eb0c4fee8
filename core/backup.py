"""A consistent copy of the live database, taken while the service runs.

SQLite-specific by nature, like core/db.py. SQLite's online backup API copies every page
inside one read transaction: in WAL mode writers go on meanwhile, and the copy is the
database as of one instant (every committed write before it, none after). The copy is
written next to the target, checked, synced and only then renamed into place, so PATH is
either absent or a complete, checked database, never half a file.
"""

import os
import sqlite3
from pathlib import Path


class BackupError(RuntimeError):
    pass


def copy_pages(source: Path, partial: Path, busy_timeout_s: float) -> None:
    # Read-only: the backup must never be the thing that changes the live database.
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s)
    dst = sqlite3.connect(partial)
    try:
        src.backup(dst)  # all pages in one step: one snapshot, no restarts under writes
        # A self-contained single file: no -wal or -shm needed beside the copy.
        dst.execute("PRAGMA journal_mode=DELETE")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copy failed its integrity check: {result}")
    finally:
        dst.close()
        src.close()


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup_database(source: Path, target: Path, busy_timeout_s: float = 5.0) -> Path:
    """Copy source to target (which must not exist yet); return target."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    if target.exists():
        raise BackupError(f"{target} exists; refusing to overwrite it")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        copy_pages(source, partial, busy_timeout_s)
        fsync_path(partial)
        os.replace(partial, target)
        fsync_path(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    return target
