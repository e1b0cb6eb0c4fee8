"""`python -m ingest FILE [FILE ...]` bulk loads CSV or JSON-lines daily metrics."""

import argparse
import sys
from datetime import datetime
from pathlib import Path

from core.db import DatabaseFault, database
from core.migrations import open_database
from core.settings import load_settings_or_exit
from ingest.loader import load_file, print_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Load daily metrics (experiment_id,date,variant_id,impressions,clicks) "
        "from .csv or JSON-lines files; a file with any bad row loads nothing.",
    )
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    settings = load_settings_or_exit()
    try:
        open_database(settings.database)
    except DatabaseFault as fault:  # missing, empty or corrupt: said plainly, no traceback
        print(f"cannot use the database: {fault}", file=sys.stderr)
        return 3
    today = datetime.now(settings.tz).date()
    return 1 if load_paths(args.files, today, settings.sampling.max_active_arms) else 0


def load_paths(paths: list[Path], today, max_arms: int | None = None) -> bool:
    """Load each file on its own (all or nothing per file); return whether any failed."""
    failed = False
    for path in paths:
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            failed = True
            continue
        with database.connection_context():
            report = load_file(path, today, max_arms)
        print_report(path, report)
        failed |= bool(report.errors)
    return failed


if __name__ == "__main__":
    sys.exit(main())
