"""Nightly job: `python -m scheduler run-once` against numpy drawing the same Beta variates.

    .venv/bin/python bench/nightly.py [--experiments 10000] [--days 3] [--workers 1,2]
                                      [--rounds 3]
    .venv/bin/python bench/nightly.py --experiments 100000 --days 1 --workers 1 --rounds 1

Experiments (2 to 5 arms) are written to a CSV and loaded with `python -m ingest`. The
baseline draws, in one process, exactly the variates run-once draws (same posteriors, same
seeds: `default_rng(seed).beta(alpha, beta, size=(10000, arms))` per experiment) and
nothing else: no database, no argmax, no rounding. run-once is timed as a whole process
(start, imports, aggregation, sampling, publish) with the peak resident memory (VmHWM) of
the run-once process itself (worker processes, when there are any, are not counted).

Each round times the baseline and then run-once, back to back; the ratio reported is the
median of the rounds' ratios, with every round's ratio beside it, because on a shared
machine one slow stretch can land on either side of a single comparison.
"""

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, bench_env, machine, metric_rows, table, use_database, workdir


def effective_date() -> date:
    """The day run-once computes for (tomorrow in UTC): the baseline uses its seeds."""
    from zoneinfo import ZoneInfo

    from core.policy import next_effective_date

    return next_effective_date(datetime.now(UTC), ZoneInfo("UTC"))


def timed_process(module_args: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Run `python -m MODULE ARGS` in cwd (whose packages it imports first); return (wall
    seconds, its peak RSS in MB, its stderr)."""
    command = [PYTHON, "-m", "bench.peak", *module_args]
    with tempfile.TemporaryFile("w+") as errors:
        started = time.perf_counter()
        done = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        elapsed = time.perf_counter() - started
        errors.seek(0)
        text = errors.read()
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed: {text}")
    peak_kb = re.search(r"peak-rss-kb (\d+)", text)
    return elapsed, int(peak_kb.group(1)) / 1024 if peak_kb else float("nan"), text


def publish_seconds(log: str) -> str:
    found = re.search(r"publish transaction ([\d.]+) s", log)
    return f"{found.group(1)} s" if found else "?"


def posteriors(db_path: Path) -> list[tuple]:
    """(alpha, beta, seed) per experiment, read before the clock starts."""
    use_database(db_path)
    from core.counts import aggregate_counts
    from core.db import database
    from core.migrations import open_database
    from core.sampling import Prior, experiment_seed, posterior
    from core.settings import load_settings

    open_database(load_settings().database)
    with database.connection_context():
        totals = aggregate_counts()
    database.close()
    prepared, day = [], effective_date()
    for t in totals:
        alpha, beta = posterior(
            [a.impressions for a in t.arms], [a.clicks for a in t.arms], Prior()
        )
        prepared.append((alpha, beta, experiment_seed(t.experiment_id, day)))
    return prepared


def baseline_seconds(prepared: list[tuple], samples: int) -> float:
    import numpy as np

    started = time.perf_counter()
    for alpha, beta, seed in prepared:
        np.random.default_rng(seed).beta(alpha, beta, size=(samples, len(alpha)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=3, help="days of metrics per experiment")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--rounds", type=int, default=3, help="baseline + job pairs per count")
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    rows, one_worker = [], None
    with workdir() as tmp:
        db_path, csv_path = tmp / "bench.db", tmp / "metrics.csv"
        from bench.common import write_csv

        count = write_csv(csv_path, metric_rows(args.experiments, days=args.days))
        env = bench_env(db_path, BANDIT_SCHEDULE_TIMEZONE="UTC")
        load_s, _, _ = timed_process(["ingest", str(csv_path)], env)
        print(f"loaded {count:,} rows in {load_s:.1f} s", file=sys.stderr)
        prepared = posteriors(db_path)
        for workers in [int(w) for w in args.workers.split(",")]:
            run_env = {**env, "BANDIT_SAMPLING_WORKERS": str(workers)}
            bases, jobs, peaks, publishes = [], [], [], []
            for _ in range(args.rounds):
                bases.append(baseline_seconds(prepared, 10_000))
                seconds, peak_mb, log = timed_process(["scheduler", "run-once"], run_env)
                jobs.append(seconds)
                peaks.append(peak_mb)
                publishes.append(publish_seconds(log))
                print(
                    f"workers={workers}: numpy {bases[-1]:.2f} s, run-once {seconds:.2f} s",
                    file=sys.stderr,
                )
            ratios = [job / base for job, base in zip(jobs, bases, strict=True)]
            base, seconds = statistics.median(bases), statistics.median(jobs)
            one_worker = seconds if workers == 1 else one_worker
            rows.append(
                [
                    f"run-once, {args.experiments:,} experiments, workers={workers}",
                    f"{base:.1f} s",
                    f"{seconds:.1f} s",
                    f"{statistics.median(ratios):.2f}x"
                    + (f" ({', '.join(f'{r:.2f}' for r in ratios)})" if len(ratios) > 1 else ""),
                    f"{seconds / args.experiments * 1e3:.2f} ms",
                    f"{max(peaks):.0f} MB",
                    ", ".join(publishes),
                    f"{one_worker / seconds:.2f}x" if one_worker else "",
                ]
            )
    header = ["benchmark", "numpy baseline (median)", "job (median)", "job / baseline: median"]
    header[-1] += " (each round)"
    header += ["per experiment", "peak RSS run-once", "publish transaction"]
    print(table([*header, "speed-up over 1 worker"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
