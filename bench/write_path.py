"""Write path: POST /data against raw Peewee upserts, and the bulk loader's rows per second.

    .venv/bin/python bench/write_path.py [--seconds 5] [--rounds 3] [--rows 1000000]

POST /data: 1,000 experiments with two variants each exist; every request reposts one
experiment's day (an upsert of two rows) to one uvicorn worker. Baseline: the same
upserts as plain Peewee `insert_many(...).on_conflict(...)` in one transaction each, one
after another in one process, on the same database file and the same SQLite settings
(WAL, synchronous=FULL by default). Both report transactions (requests) per second.

Bulk: a CSV of about --rows rows loaded by `python -m ingest` (process wall time, from
start to exit, so interpreter start and imports count against it).
"""

import argparse
import json
import sys
import time
from datetime import date
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
    write_csv,
)
from bench.load import run_load
from bench.nightly import timed_process

DAY = date(2025, 12, 22)


def post_body(experiment: int, clicks: int) -> bytes:
    variants = [
        {"variant_id": arm, "impressions": 1000, "clicks": clicks + i}
        for i, arm in enumerate(("control", "variant"))
    ]
    body = {"experiment_id": f"exp_{experiment:06d}", "date": DAY.isoformat(), "variants": variants}
    return json.dumps(body).encode()


def seed(db_path: Path, experiments: int) -> list[tuple]:
    """Create the experiments; return (experiment pk, variant pk) pairs for the baseline."""
    use_database(db_path)
    from core.db import database, init_database
    from core.models import Variant
    from core.settings import load_settings
    from ingest.metrics import MetricRow, store_rows

    init_database(load_settings().database)
    rows = [
        MetricRow(f"exp_{e:06d}", DAY, arm, 1000, 10)
        for e in range(experiments)
        for arm in ("control", "variant")
    ]
    with database.connection_context():
        store_rows(rows)
        pairs = list(Variant.select(Variant.experiment, Variant.id).order_by(Variant.id).tuples())
    database.close()
    return pairs


def peewee_upserts_per_s(db_path: Path, pairs: list[tuple], seconds: float) -> float:
    """Plain Peewee: one transaction per two-row upsert, as fast as one thread can go."""
    from peewee import EXCLUDED

    from core.db import database, init_database, write_transaction
    from core.models import DailyMetric
    from core.settings import load_settings

    init_database(load_settings().database)
    conflict = [DailyMetric.experiment, DailyMetric.date, DailyMetric.variant]
    update = {DailyMetric.clicks: EXCLUDED.clicks, DailyMetric.updated_at: EXCLUDED.updated_at}
    done, stop_at = 0, time.perf_counter() + seconds
    with database.connection_context():
        started = time.perf_counter()
        while time.perf_counter() < stop_at:
            i = (done * 2) % len(pairs)
            rows = [
                {
                    "experiment": e,
                    "variant": v,
                    "date": DAY,
                    "impressions": 1000,
                    "clicks": done % 50,
                }
                for e, v in pairs[i : i + 2]
            ]
            with write_transaction():
                DailyMetric.insert_many(rows).on_conflict(
                    conflict_target=conflict, update=update
                ).execute()
            done += 1
        elapsed = time.perf_counter() - started
    database.close()
    return done / elapsed


def post_rows(args, tmp: Path) -> list:
    db_path = tmp / "post.db"
    pairs = seed(db_path, args.experiments)
    requests = [("POST", "/data", post_body(e, c)) for e in range(args.experiments) for c in (5, 6)]
    env = bench_env(db_path)
    base, service = [], []
    for _ in range(args.rounds):
        base.append(peewee_upserts_per_s(db_path, pairs, args.seconds))
        with uvicorn_server("api.main:app", env, probe_path="/healthz") as port:
            run_load(port, requests, 1, args.connections, args.tool)
            service.append(run_load(port, requests, args.seconds, args.connections, args.tool))
        print(f"baseline {base[-1]:.0f}/s, service {service[-1]}", file=sys.stderr)
    b = sorted(base)[len(base) // 2]
    s = sorted(service, key=lambda r: r.requests_per_s)[len(service) // 2]
    return [
        "POST /data (2 variants), one worker",
        f"{b:,.0f} transactions/s",
        f"{s.requests_per_s:,.0f} req/s (p99 {s.p99_ms:.1f} ms, {s.errors} errors)",
        f"{s.requests_per_s / b:.2f}",
    ]


def bulk_row(args, tmp: Path) -> list:
    csv_path = tmp / "bulk.csv"
    experiments = 10_000
    days = max(1, round(args.rows / (experiments * 3.5)))
    count = write_csv(csv_path, metric_rows(experiments, days=days))
    env = bench_env(tmp / "bulk.db")
    seconds, peak_mb, _ = timed_process(["ingest", str(csv_path)], env)
    return [
        f"python -m ingest, {count:,}-row CSV into an empty database",
        "100,000 rows/s (target)",
        f"{count / seconds:,.0f} rows/s ({seconds:.1f} s, peak RSS {peak_mb:.0f} MB)",
        f"{count / seconds / 100_000:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1_000_000, help="bulk CSV size; 0 skips it")
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    with workdir() as tmp:
        rows = [post_rows(args, tmp)]
        if args.rows:
            rows.append(bulk_row(args, tmp))
    print(table(["benchmark", "baseline", "measured", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
