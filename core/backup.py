"""A consistent copy of the live database, taken while the service runs, on either engine.

SQLite: the online backup API copies every page inside one read transaction; in WAL mode
writers go on meanwhile, and the copy is the database as of one instant (every committed
write before it, none after). PostgreSQL: pg_dump's custom format, also one snapshot
that does not block writers, restored with pg_restore. Either way the copy is written next
to the target, checked, synced and only then renamed into place, so PATH is either absent
or a complete, checked copy, never half a file. The engine-specific steps are in core/db.
"""

import os
from pathlib import Path

from core.db import BackupError, copy_database_file, dump_server_database, engine_name
from core.settings import DatabaseSettings

__all__ = ["BackupError", "backup_configured", "backup_database"]


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def written_safely(target: Path, write) -> Path:
    """write(partial) next to target, then sync and rename: target appears whole or not."""
    if target.exists():
        raise BackupError(f"{target} exists; refusing to overwrite it")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        write(partial)
        fsync_path(partial)
        os.replace(partial, target)
        fsync_path(target.parent)
    finally:
        partial.unlink(missing_ok=True)
    return target


def backup_database(source: Path, target: Path, busy_timeout_s: float = 5.0) -> Path:
    """Copy the SQLite file source to target (which must not exist yet); return target."""
    if not source.exists():
        raise BackupError(f"no database at {source}")
    return written_safely(
        target, lambda partial: copy_database_file(source, partial, busy_timeout_s)
    )


def backup_configured(settings: DatabaseSettings, target: Path) -> Path:
    """Back up the database the settings name: the SQLite file, or the PostgreSQL database
    with pg_dump (custom format: restore with pg_restore)."""
    if engine_name(settings) == "postgresql":
        return written_safely(target, lambda partial: dump_server_database(settings.url, partial))
    return backup_database(Path(settings.path), target, settings.busy_timeout_ms / 1000)
