"""Read path: `python -m api` (as the Procfile starts it) against a bare ASGI app.

    .venv/bin/python bench/read_path.py [--experiments 1000] [--seconds 5] [--rounds 3]

1,000 experiments (2 to 5 arms) are loaded and published into a temporary database. The
baseline answers with a constant body of the mean allocation size on uvicorn + httptools +
uvloop, with the same load generator. Measured: GET /allocation for a random experiment;
GET /allocations with the current ETag in If-None-Match (a 304); GET /assign for 2,000
(experiment, unit) pairs; GET /allocation with server.workers = 2 against 1 process.
Rounds alternate them; medians are reported, a ratio as the median of its rounds' ratios.
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
    web_server,
    workdir,
)
from bench.load import run_load


def seed(db_path: Path, experiments: int) -> tuple[int, str]:
    """Load and publish the experiments; return the mean allocation body size in bytes and
    the bulk payload's ETag."""
    use_database(db_path)
    from api.cache import Bulk
    from core.db import database
    from core.migrations import open_database
    from core.served import bodies_since
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
    with database.connection_context():
        changed = bodies_since(-1)
    database.close()
    bodies = changed.bodies()
    etag = Bulk(changed.items(bodies)).plain.etag.decode()
    return round(statistics.mean(len(body) for body in bodies.values())), etag


def measure(server, paths: list, args) -> list:
    with server as port:
        run_load(port, paths, 1, args.connections, args.tool)  # warm up
        return [run_load(port, paths, args.seconds, args.connections, args.tool)]


def median(values: list[float]) -> float:
    return statistics.median(values)


def row(name: str, baseline: list, service: list) -> list:
    """Medians over rounds; the ratio is the median of each round's own ratio, since both
    were measured minutes apart on the same machine."""
    ratios = [s.requests_per_s / b.requests_per_s for b, s in zip(baseline, service, strict=True)]
    return [
        name,
        f"{median([b.requests_per_s for b in baseline]):,.0f}",
        f"{median([s.requests_per_s for s in service]):,.0f}",
        f"{median(ratios):.2f}",
        f"{median([b.p99_ms for b in baseline]):.2f} ms",
        f"{median([s.p99_ms for s in service]):.2f} ms",
        sum(s.errors for s in service),
        service[0].tool,
    ]


HEADER = ["benchmark", "baseline req/s", "service req/s", "ratio", "p99 baseline", "p99 service"]
HEADER += ["errors", "tool"]


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
        body_size, bulk_etag = seed(db_path, args.experiments)
        env = bench_env(db_path, BENCH_BODY_SIZE=str(body_size))
        scenarios = {
            "allocation": [
                f"/allocation?experiment_id=exp_{e:06d}" for e in range(args.experiments)
            ],
            "bulk_304": [("GET", "/allocations", None, {"If-None-Match": bulk_etag})],
            "assign": [
                f"/assign?experiment_id=exp_{e % args.experiments:06d}&unit_id=user-{e}"
                for e in range(2000)
            ],
        }
        runs: dict[str, list] = {name: [] for name in ("bare", *scenarios, "workers_2")}
        for round_number in range(args.rounds):
            bare = uvicorn_server("bench.bare_app:app", env, probe_path="/")
            runs["bare"] += measure(bare, scenarios["allocation"], args)
            for name in scenarios:
                runs[name] += measure(web_server(env), scenarios[name], args)
            runs["workers_2"] += measure(web_server(env, workers=2), scenarios["allocation"], args)
            print(
                f"round {round_number + 1}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs.items()),
                file=sys.stderr,
            )
    size = f"{args.experiments} experiments, {body_size} B"
    rows = [
        row(f"GET /allocation, python -m api, 1 process, {size}", runs["bare"], runs["allocation"]),
        row("GET /allocations with If-None-Match (304)", runs["bare"], runs["bulk_304"]),
        row("GET /assign, 2,000 (experiment, unit) pairs", runs["bare"], runs["assign"]),
        row(
            "GET /allocation, server.workers = 2 (baseline: 1 process)",
            runs["allocation"],
            runs["workers_2"],
        ),
    ]
    print(table(HEADER, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
