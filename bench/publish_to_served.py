"""Publish to served: how long after a publish commits a running web process serves it.

    .venv/bin/python bench/publish_to_served.py [--experiments 200000] [--rounds 3]

The experiments (3 arms each) get a first split from the real publish (scheduler/publish.py,
with made-up percentages: sampling is not what is measured), then `python -m api` starts
on the database: the time until its port answers and until its cache holds every
experiment is the restart figure. Each round publishes a new split for every experiment
and polls one experiment until it shows the new run (the cache swaps whole snapshots, so
the rest follow at once: 200 sampled experiments are then checked to be on the new run
too). The baseline is server.refresh_ms, the interval at which the web looks.
"""

import argparse
import json
import statistics
import sys
import time
import urllib.request
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, bench_env, free_port, machine, table, use_database, workdir

DAY = date(2025, 12, 23)
ARMS = 3


def seed(db_path: Path, experiments: int) -> None:
    use_database(db_path)
    from core.db import database
    from core.migrations import open_database
    from core.settings import load_settings
    from ingest.metrics import MetricRow, store_rows

    open_database(load_settings().database)
    with database.connection_context():
        day = date(2025, 12, 22)
        for start in range(0, experiments, 10_000):
            rows = [
                MetricRow(f"exp_{e:06d}", day, f"arm_{a}", 1000, 10 + a)
                for e in range(start, min(start + 10_000, experiments))
                for a in range(ARMS)
            ]
            store_rows(rows)


def results(round_number: int):
    """One made-up split per experiment, different each round."""
    from core.schema import Experiment, Variant
    from scheduler.allocate import ArmAllocation, ExperimentAllocation

    arms: dict[int, list] = {}
    for pk, name, vpk, vname in (
        Variant.select(Experiment.id, Experiment.name, Variant.id, Variant.name)
        .join(Experiment)
        .order_by(Variant.id)
        .tuples()
    ):
        arms.setdefault((pk, name), []).append((vpk, vname))
    shares = [[10.0 + round_number, 30.0, 60.0 - round_number]]
    for (pk, name), variants in arms.items():
        yield ExperimentAllocation(
            pk,
            name,
            1,
            [
                ArmAllocation(vpk, vname, pct / 100, pct)
                for (vpk, vname), pct in zip(variants, shares[0], strict=True)
            ],
            "thompson",
            "made up for the benchmark",
        )


def publish(round_number: int) -> tuple[int, float]:
    """Publish a run; return its id and the monotonic time of its commit."""
    from core.db import database
    from scheduler.publish import publish_allocations
    from scheduler.runs import clock_from, mark_succeeded, start_run

    now = datetime.now(UTC)
    with database.connection_context():
        run_id = start_run(now, "manual", DAY, None, 600)
        clock = clock_from(now)
        publish_allocations(
            run_id, DAY, results(round_number), clock, lambda: mark_succeeded(run_id, 0, clock())
        )
    return run_id, time.monotonic()


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as response:
        return json.loads(response.read())


def wait(predicate, timeout: float = 300.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("timed out")


def on_run(port: int, experiment: int, run_id: int) -> bool:
    return get(port, f"/allocation?experiment_id=exp_{experiment:06d}")["run_id"] == run_id


def start_web(db_path: Path, experiments: int):
    import subprocess

    port = free_port()
    env = bench_env(db_path, BANDIT_SERVER_PORT=str(port))
    started = time.monotonic()
    process = subprocess.Popen([PYTHON, "-m", "api"], env=env, cwd=ROOT)
    bound = wait(lambda: get(port, "/healthz") is not None)
    loaded = wait(lambda: get(port, "/healthz")["experiments_cached"] == experiments)
    return process, port, bound - started, loaded - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    with workdir() as tmp:
        db_path = tmp / "bench.db"
        seed(db_path, args.experiments)
        publish(0)
        process, port, bound_s, loaded_s = start_web(db_path, args.experiments)
        try:
            delays = []
            for round_number in range(1, args.rounds + 1):
                run_id, committed = publish(round_number)
                served = wait(lambda r=run_id: on_run(port, args.experiments - 1, r))
                step = max(1, args.experiments // 200)
                assert all(on_run(port, e, run_id) for e in range(0, args.experiments, step))
                delays.append(served - committed)
                print(
                    f"round {round_number}: served {delays[-1]:.2f} s after the commit",
                    file=sys.stderr,
                )
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        table(
            ["benchmark", "baseline", "measured", "target"],
            [
                [
                    f"publish to served, {args.experiments:,} experiments, python -m api",
                    "refresh_ms 250 ms",
                    f"median {statistics.median(delays):.2f} s (max {max(delays):.2f} s)",
                    "at most 2 s",
                ],
                [
                    f"restart, {args.experiments:,} experiments",
                    "",
                    f"port answers after {bound_s:.2f} s, all served after {loaded_s:.2f} s",
                    "port at once",
                ],
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
