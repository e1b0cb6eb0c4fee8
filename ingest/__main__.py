"""`python -m ingest FILE [FILE ...]` bulk loads CSV or JSON-lines daily metrics."""

import argparse
import sys
from datetime import datetime
from pathlib import Path

from core.db import database, init_database
from core.settings import SettingsError, load_settings
from ingest.loader import load_file, print_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Load daily metrics (experiment_id,date,variant_id,impressions,clicks) "
        "from .csv or JSON-lines files; a file with any bad row loads nothing.",
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as e:
        print(f"bad configuration: {e}", file=sys.stderr)
        return 2
    init_database(settings.database)
    today = datetime.now(settings.tz).date()
    failed = False
    for path in args.files:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            failed = True
            continue
        with database.connection_context():
            report = load_file(path, today)
        print_report(path, report)
        failed |= bool(report.errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
