"""The experiment page for 3 arms and a year of days: server-side render time.

    .venv/bin/python bench/pages.py [--days 365] [--rounds 15]

Builds one experiment lived day by day (tests/demo.py: traffic follows each night's split,
the nightly job runs after every day), then renders, in this process and in turn, the
experiment page (`/experiments/{id}` for a browser: report, series, charts, HTML) and, as
the baseline, the JSON report of GET /experiments/{id} (core.report, serialized). Prints
the median of each over the rounds, the ratio, and the page's size; the target is a page
under 300 ms.
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, table, workdir

RATES = {"control": 0.040, "faster_checkout": 0.046, "one_click": 0.043}


def build(db_path: Path, days: int):
    from core.db import database
    from core.migrations import open_database
    from core.settings import load_settings
    from tests.demo import live_days

    base = load_settings({})
    settings = dataclasses.replace(
        base, database=dataclasses.replace(base.database, path=str(db_path))
    )
    open_database(settings.database)
    first = datetime.now(UTC).date() - timedelta(days=days)
    with database.connection_context():
        live_days(settings, "checkout", RATES, first, days)
    return settings


def timed(action, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from api.pages import Pages
    from core.db import database
    from core.report import experiment_detail

    with workdir() as tmp:
        settings = build(tmp / "bandit.db", args.days)
        pages = Pages(None, settings)

        def page():
            return pages.render("experiment", "checkout", {}).body

        def report():
            with database.connection_context():
                return json.dumps(
                    experiment_detail("checkout", settings, datetime.now(UTC)), default=str
                )

        page()  # warm: imports, first connection
        base, _ = timed(report, args.rounds)
        measured, body = timed(page, args.rounds)
    print(machine())
    header = ["command", "benchmark", "baseline", "measured", "ratio", "target"]
    row = [
        "`.venv/bin/python bench/pages.py`",
        f"experiment page, 3 arms, {args.days} days ({len(body) // 1024} KB of HTML)",
        f"GET /experiments/{{id}} report {base * 1000:.0f} ms",
        f"{measured * 1000:.0f} ms (median of {args.rounds})",
        f"{measured / base:.2f}",
        "page under 300 ms",
    ]
    print(table(header, [row]))


if __name__ == "__main__":
    main()
