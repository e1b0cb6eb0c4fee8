"""`python -m scheduler` runs the clock; `python -m scheduler run-once` runs the job and exits."""

import argparse
import sys

from core.db import database
from core.experiments import experiment_exists
from core.logs import configure_logging
from core.migrations import open_database_or_exit
from core.settings import load_settings_or_exit
from scheduler.job import run_job
from scheduler.runs import real_now


def known(name: str) -> bool:
    with database.connection_context():
        return experiment_exists(name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scheduler")
    parser.add_argument("command", nargs="?", choices=["clock", "run-once"], default="clock")
    parser.add_argument("--experiment", help="run-once: only this experiment")
    args = parser.parse_args(argv)
    if args.experiment and args.command != "run-once":
        parser.error(
            "--experiment is an option of run-once: python -m scheduler run-once --experiment ID"
        )
    settings = load_settings_or_exit()
    configure_logging(settings.server.log_format)
    open_database_or_exit(settings.database)
    if args.command == "clock":
        from scheduler.clock import run_clock  # APScheduler: not loaded for run-once

        run_clock(settings)
        return 0
    if args.experiment and not known(args.experiment):
        print(f"unknown experiment {args.experiment!r}", file=sys.stderr)
        return 1
    summary = run_job(real_now(), settings, "manual", experiment_id=args.experiment)
    print(
        f"run {summary.run_id}: {summary.status}, {summary.experiments_processed} experiments,"
        f" effective {summary.effective_date}"
        + (f", error: {summary.error}" if summary.error else "")
    )
    return 0 if summary.status == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
