"""`python -m ingest FILE [FILE ...]` bulk loads CSV or JSON-lines daily metrics."""

import argparse
import sys
from contextlib import nullcontext
from datetime import datetime

from core.db import database, named
from core.migrations import open_database_or_exit
from core.settings import load_settings_or_exit
from ingest.loader import load_file, print_report
from ingest.progress import Progress, wanted
from ingest.source import STDIN, UnknownFormat, open_source


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m ingest",
        description="Load daily metrics (experiment_id,date,variant_id,impressions,clicks) "
        "from .csv or JSON-lines (.jsonl, .ndjson) files, or - for standard input; a file "
        "with any bad row loads nothing.",
    )
    parser.add_argument("files", nargs="+", help="paths, or - for standard input")
    parser.add_argument(
        "--format", choices=["csv", "jsonl"], help="instead of the extension (needed for -)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="show rows read, percent and rows/s on standard error (default: on a terminal)",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = load_settings_or_exit()
    # First, so that a load into the wrong database is seen before it happens.
    print(f"loading into the {named(settings.database)}", file=sys.stderr)
    open_database_or_exit(settings.database)
    today = datetime.now(settings.tz).date()
    cap = settings.sampling.max_active_arms
    return 1 if load_paths(args.files, today, args.format, wanted(args.progress), cap) else 0


def load_paths(names: list[str], today, given_format=None, progress=False, max_arms=None) -> bool:
    """Load each file on its own (all or nothing per file); return whether any failed."""
    failed = False
    for name in names:
        failed |= not load_one(name, today, given_format, progress, max_arms)
    return failed


def load_one(name: str, today, given_format, progress: bool, max_arms=None) -> bool:
    try:
        source = open_source(name, given_format)
    except UnknownFormat as refusal:
        print(refusal, file=sys.stderr)
        return False
    except FileNotFoundError:
        print(f"{name}: no such file", file=sys.stderr)
        return False
    except OSError as e:
        print(f"{name}: cannot be read ({e.strerror})", file=sys.stderr)
        return False
    shown = Progress() if progress else None
    with database.connection_context(), source.stream if name != STDIN else nullcontext():
        report = load_file(source, today, shown, max_arms)
    if shown is not None:
        shown.done()
    print_report(name, report)
    return not report.errors


if __name__ == "__main__":
    sys.exit(main())
