"""`python -m core backup PATH`: a consistent copy of the configured database."""

import argparse
import sys
from pathlib import Path

from core.backup import BackupError, backup_database
from core.settings import SettingsError, load_settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core")
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser("backup", help="copy the live database to PATH (must not exist)")
    backup.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        source = Path(settings.database.path)
        backup_database(source, args.path, settings.database.busy_timeout_ms / 1000)
    except (SettingsError, BackupError, OSError) as e:
        print(f"backup failed: {e}", file=sys.stderr)
        return 1
    print(f"backed up {source} to {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
