"""Read path: GET /allocation on one uvicorn worker against a bare ASGI app (the baseline).

    .venv/bin/python bench/read_path.py [--experiments 1000] [--seconds 5] [--rounds 3]

1,000 experiments (2 to 5 arms) are loaded and published into a temporary database; each
request asks for a random one. The baseline answers with a constant body of the same
mean size on the same uvicorn, with the same load generator and Lua script. Rounds
alternate baseline and service; the median round is reported.
"""

import argparse
import dataclasses
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    bench_env,
    machine,
    metric_rows,
    table,
    use_database,
    uvicorn_server,
    workdir,
)
from bench.load import run_load


def seed(db_path: Path, experiments: int) -> int:
    """Load and publish the experiments; return the mean allocation body size in bytes."""
    use_database(db_path)
    from api.cache import AllocationCache
    from core.db import database
    from core.migrations import open_database
    from core.settings import load_settings
    from ingest.metrics import MetricRow, store_rows
    from scheduler.job import run_job

    settings = load_settings()
    open_database(settings.database)
    with database.connection_context():
        store_rows([MetricRow(*row) for row in metric_rows(experiments)])
    sampling = dataclasses.replace(settings.sampling, samples=1000)
    run_job(
        datetime(2025, 12, 22, 23, 50, tzinfo=UTC), dataclasses.replace(settings, sampling=sampling)
    )
    cache = AllocationCache()
    cache.refresh()
    database.close()
    return round(statistics.mean(len(body) for _, body in cache.encoded.values()))


def measure(app: str, env: dict, paths: list[str], args) -> list:
    with uvicorn_server(app, env, probe_path=paths[0]) as port:
        run_load(port, paths, 1, args.connections, args.tool)  # warm up
        return [run_load(port, paths, args.seconds, args.connections, args.tool)]


def median_result(results: list):
    return sorted(results, key=lambda r: r.requests_per_s)[len(results) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5, help="per round and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    with workdir() as tmp:
        db_path = tmp / "bench.db"
        body_size = seed(db_path, args.experiments)
        paths = [f"/allocation?experiment_id=exp_{e:06d}" for e in range(args.experiments)]
        env = bench_env(db_path, BENCH_BODY_SIZE=str(body_size))
        baseline, service = [], []
        for round_number in range(args.rounds):
            baseline += measure("bench.bare_app:app", env, paths, args)
            service += measure("--factory api.app:create_app", env, paths, args)
            print(
                f"round {round_number + 1}: baseline {baseline[-1]}, service {service[-1]}",
                file=sys.stderr,
            )
    base, ours = median_result(baseline), median_result(service)
    print(
        table(
            [
                "benchmark",
                "baseline req/s",
                "service req/s",
                "ratio",
                "p99 baseline",
                "p99 service",
                "errors",
                "tool",
            ],
            [
                [
                    f"GET /allocation, {args.experiments} experiments, {body_size} B",
                    f"{base.requests_per_s:,.0f}",
                    f"{ours.requests_per_s:,.0f}",
                    f"{ours.requests_per_s / base.requests_per_s:.2f}",
                    f"{base.p99_ms:.2f} ms",
                    f"{ours.p99_ms:.2f} ms",
                    ours.errors,
                    ours.tool,
                ]
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
