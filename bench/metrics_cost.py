"""What counting costs the read path: GET /allocation with server.metrics on, against
the same service with it off (the baseline).

    .venv/bin/python bench/metrics_cost.py [--experiments 1000] [--seconds 5] [--rounds 5]

Same database, load generator and paths as bench/read_path.py; rounds alternate off and
on, and the median round of each is reported. Target: on at least 0.95 of off. Then, with
no server and no load generator (less at the mercy of a busy machine), the fast path
itself is called in this process, alternating off and on, and the median of each is
reported in microseconds per request.
"""

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_env, machine, table, use_database, workdir
from bench.read_path import measure, median_result, seed

APP = "--factory api.app:create_app"


def rounds(env: dict, paths: list[str], args) -> tuple[list, list]:
    off, on = [], []
    for number in range(args.rounds):
        off += measure(APP, {**env, "BANDIT_SERVER_METRICS": "false"}, paths, args)
        on += measure(APP, {**env, "BANDIT_SERVER_METRICS": "true"}, paths, args)
        print(f"round {number + 1}: off {off[-1]}, on {on[-1]}", file=sys.stderr)
    return off, on


def fast_path_app(metrics_on: bool):
    from api.app import create_app
    from core.migrations import open_database
    from core.settings import load_settings

    settings = load_settings()
    server = dataclasses.replace(settings.server, metrics=metrics_on)
    app = create_app(dataclasses.replace(settings, server=server))
    open_database(settings.database)
    app.state.cache.refresh()
    return app


async def call_fast_path(app, queries: list[bytes]) -> float:
    """Seconds per request over the queries, answered by the fast path."""

    async def send(message):
        pass

    scope = {"type": "http", "method": "GET", "path": "/allocation", "headers": []}
    started = time.perf_counter()
    for query in queries:
        await app({**scope, "query_string": query}, None, send)
    return (time.perf_counter() - started) / len(queries)


def in_process(db_path: Path, experiments: int, rounds: int) -> tuple[float, float]:
    """Median microseconds per fast-path request, (off, on); each app made once."""
    from api import metrics

    use_database(db_path)
    queries = [b"experiment_id=exp_%06d" % (e % experiments) for e in range(100_000)]
    apps = {on: fast_path_app(on) for on in (False, True)}
    times = {False: [], True: []}
    for _ in range(rounds):
        for on, app in apps.items():
            metrics.set_enabled(on)  # one process, two apps: the switch is the module's
            times[on].append(asyncio.run(call_fast_path(app, queries)))
    return statistics.median(times[False]) * 1e6, statistics.median(times[True]) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5, help="per round and server")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    with workdir() as tmp:
        seed(tmp / "bench.db", args.experiments)
        paths = [f"/allocation?experiment_id=exp_{e:06d}" for e in range(args.experiments)]
        off, on = rounds(bench_env(tmp / "bench.db"), paths, args)
        per_off, per_on = in_process(tmp / "bench.db", args.experiments, args.rounds)
    base, ours = median_result(off), median_result(on)
    header = ["benchmark", "metrics off req/s", "metrics on req/s", "ratio", "p99 off", "p99 on"]
    row = [
        f"GET /allocation, {args.experiments} experiments",
        f"{base.requests_per_s:,.0f}",
        f"{ours.requests_per_s:,.0f}",
        f"{ours.requests_per_s / base.requests_per_s:.2f}",
        f"{base.p99_ms:.2f} ms",
        f"{ours.p99_ms:.2f} ms",
    ]
    fast = [
        "fast path in process, 100,000 calls",
        f"{1e6 / per_off:,.0f} ({per_off:.2f} us)",
        f"{1e6 / per_on:,.0f} ({per_on:.2f} us)",
        f"{per_off / per_on:.2f}",
        "",
        "",
    ]
    print(table(header, [row, fast]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
