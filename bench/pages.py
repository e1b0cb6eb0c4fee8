"""The pages' server-side render times: an experiment with 3 arms and a year of days, and
the list page among thousands of experiments.

    .venv/bin/python bench/pages.py [--days 365] [--experiments 5000] [--rounds 15]

Builds one experiment lived day by day (tests/demo.py: traffic follows each night's split,
the nightly job runs after every day) and `--experiments` more with two arms and one day
each, computed by one run. Then renders, in this process, each page and its baseline in
turn: the experiment page (`/experiments/{id}` for a browser: report, series, charts,
HTML; its outlook not computed and its series not cached, as on a first visit after new
data; then again with its series cached) against the JSON report of GET
/experiments/{id} (core.report, serialized); the first list page (`/`, 50 experiments)
against GET /experiments?limit=50 (core.report.list_experiments, serialized). Prints the
median of each over the rounds and the ratio; the target is an experiment page under
300 ms. Then the outlook alone, computed once (not cached), for the same experiment.
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


def build(db_path: Path, days: int, experiments: int):
    from core.db import database
    from core.migrations import open_database
    from core.settings import load_settings
    from tests.demo import live_days
    from tests.helpers import load, run_at

    base = load_settings({})
    database_settings = dataclasses.replace(base.database, path=str(db_path))
    settings = dataclasses.replace(base, database=database_settings)
    open_database(settings.database)
    today = datetime.now(UTC).date()
    with database.connection_context():
        live_days(settings, "checkout", RATES, today - timedelta(days=days), days)
        yesterday = today - timedelta(days=1)
        load(
            *[
                (f"exp_{n:05d}", yesterday, arm, 1000, 40 + k)
                for n in range(experiments)
                for k, arm in enumerate("ab")
            ]
        )
        run_at(datetime.now(UTC), settings, "manual")
    return settings


def timed(action, rounds: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def in_connection(action):
    from core.db import database

    def run():
        with database.connection_context():
            return json.dumps(action(), default=str)

    return run


def row(name: str, base: float, measured: float, rounds: int, target: str) -> list:
    return [
        "`.venv/bin/python bench/pages.py`",
        name,
        f"{base * 1000:.0f} ms",
        f"{measured * 1000:.0f} ms (median of {rounds})",
        f"{measured / base:.2f}",
        target,
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--experiments", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    from api.pages import Pages
    from core.outlook_report import experiment_outlook
    from core.report import experiment_detail, list_experiments
    from core.series import _cache as series_cache

    print(machine())
    with workdir() as tmp:
        settings = build(tmp / "bandit.db", args.days, args.experiments)
        pages = Pages(None, settings)
        now = datetime.now(UTC)
        report = in_connection(lambda: experiment_detail("checkout", settings, now))
        listed = in_connection(lambda: list_experiments(50, 0))
        rows = []

        def cold_page():
            series_cache.clear()  # as on the first view after new data
            return pages.render("experiment", "checkout", {}).body

        for name, base, page, target in (
            (
                f"experiment page, 3 arms, {args.days} days, against GET /experiments/{{id}}",
                report,
                cold_page,
                "page under 300 ms",
            ),
            (
                "the same page viewed again, its series cached",
                report,
                lambda: pages.render("experiment", "checkout", {}).body,
                "(report)",
            ),
            (
                f"list page, 50 of {args.experiments + 1} experiments, against GET /experiments",
                listed,
                lambda: pages.render("list", None, {}).body,
                "(report)",
            ),
        ):
            page()  # warm: imports, first connection
            base_time, _ = timed(base, args.rounds)
            page_time, body = timed(page, args.rounds)
            rows.append(
                row(f"{name} ({len(body) // 1024} KB)", base_time, page_time, args.rounds, target)
            )
        started = time.perf_counter()
        in_connection(lambda: experiment_outlook("checkout", settings, now))()
        outlook_time = time.perf_counter() - started
    header = ["command", "benchmark", "baseline", "measured", "ratio", "target"]
    print(table(header, rows))
    print(f"outlook of the same experiment, computed once: {outlook_time * 1000:.0f} ms")


if __name__ == "__main__":
    main()
