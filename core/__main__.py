"""`python -m core backup PATH`: a consistent copy of the configured database;
`python -m core init`: make the database (the explicit way to start with an empty one)."""

import argparse
import sys
from pathlib import Path

from core.backup import BackupError, backup_configured
from core.db import DatabaseFault, named
from core.migrations import open_database
from core.settings import SettingsError, load_settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core")
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser("backup", help="copy the live database to PATH (must not exist)")
    backup.add_argument("path", type=Path)
    commands.add_parser("init", help="make the empty database that database.url names")
    args = parser.parse_args(argv)
    if args.command == "init":
        return init()
    try:
        settings = load_settings()
        backup_configured(settings.database, args.path)
    except (SettingsError, BackupError, OSError) as e:
        print(f"backup failed: {e}", file=sys.stderr)
        return 1
    print(f"backed up the {named(settings.database)} to {args.path}")
    return 0


def init() -> int:
    """Make the database (or check the one there): the explicit way to start empty."""
    try:
        settings = load_settings()
        open_database(settings.database, create=True)
    except (SettingsError, DatabaseFault, OSError) as e:
        print(f"init failed: {e}", file=sys.stderr)
        return 1
    print(f"database ready: the {named(settings.database)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
