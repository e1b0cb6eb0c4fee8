"""Write path: POST /data against plain sqlite3 upserts, and the bulk loader's rows per second.

    .venv/bin/python bench/write_path.py [--seconds 5] [--rounds 3] [--rows 1000000]
    .venv/bin/python bench/write_path.py --only bulk --bulk-rounds 3 --against ../other-checkout

POST /data: 1,000 experiments with two variants each exist; every request reposts one
experiment's day (an upsert of two rows) to `python -m api` (one process, as the Procfile
starts it). Baseline: the same upserts with Python's own sqlite3 module, one transaction
each, one after another in one process, on the same database file and the same SQLite
settings (WAL, synchronous=FULL by default). Both report transactions (requests) per second.

Bulk: a CSV of about --rows rows loaded by `python -m ingest` into an empty database
(process wall time, from start to exit, so interpreter start and imports count against
it; and the loader's own peak RSS), --bulk-rounds times. With --against DIR, each round
first loads the same CSV with the code of another checkout of this project (its ingest
package, run from DIR), so that two versions are compared under the same machine load;
every run is printed to stderr with the load average before it, and each version's row
gives its median rows/s.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    bench_env,
    machine,
    metric_rows,
    table,
    use_database,
    web_server,
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
    from core.db import database
    from core.migrations import open_database
    from core.schema import Variant
    from core.settings import load_settings
    from ingest.metrics import MetricRow, store_rows

    open_database(load_settings().database)
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


UPSERT = (
    "INSERT INTO daily_metric (experiment_id, variant_id, date, impressions, clicks, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, date, variant_id) DO UPDATE SET"
    " impressions = excluded.impressions, clicks = excluded.clicks,"
    " updated_at = excluded.updated_at"
)


def stdlib_upserts_per_s(db_path: Path, pairs: list[tuple], seconds: float) -> float:
    """Python's own sqlite3, one transaction per two-row upsert, on the service's SQLite
    settings (WAL, its synchronous level), as fast as one thread can go."""
    import sqlite3

    from core.settings import load_settings

    settings = load_settings().database
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={settings.synchronous}")
    conn.execute(f"PRAGMA busy_timeout={settings.busy_timeout_ms}")
    done, stop_at = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < stop_at:
        i = (done * 2) % len(pairs)
        now = time.strftime("%Y-%m-%d %H:%M:%S")
        rows = [(e, v, DAY.isoformat(), 1000, done % 50, now) for e, v in pairs[i : i + 2]]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(UPSERT, rows)
        conn.execute("COMMIT")
        done += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


def post_rows(args, tmp: Path) -> list:
    db_path = tmp / "post.db"
    pairs = seed(db_path, args.experiments)
    requests = [("POST", "/data", post_body(e, c)) for e in range(args.experiments) for c in (5, 6)]
    env = bench_env(db_path)
    base, service = [], []
    for _ in range(args.rounds):
        base.append(stdlib_upserts_per_s(db_path, pairs, args.seconds))
        with web_server(env) as port:
            run_load(port, requests, 1, args.connections, args.tool)
            service.append(run_load(port, requests, args.seconds, args.connections, args.tool))
        print(f"baseline {base[-1]:.0f}/s, service {service[-1]}", file=sys.stderr)
    b = sorted(base)[len(base) // 2]
    s = sorted(service, key=lambda r: r.requests_per_s)[len(service) // 2]
    return [
        "POST /data (2 variants), python -m api, 1 process",
        f"{b:,.0f} transactions/s",
        f"{s.requests_per_s:,.0f} req/s (p99 {s.p99_ms:.1f} ms, {s.errors} errors)",
        f"{s.requests_per_s / b:.2f}",
    ]


def bulk_rows(args, tmp: Path) -> list[list]:
    csv_path = tmp / "bulk.csv"
    experiments = 10_000
    days = max(1, round(args.rows / (experiments * 3.5)))
    count = write_csv(csv_path, metric_rows(experiments, days=days))
    checkouts = [(str(args.against), args.against.resolve())] if args.against else []
    checkouts.append(("this checkout", ROOT))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in checkouts}
    for _ in range(args.bulk_rounds):
        for name, root in checkouts:
            runs[name].append(timed_load(csv_path, tmp / "bulk.db", root))
            seconds, peak_mb = runs[name][-1]
            print(
                f"bulk {name}: {count / seconds:,.0f} rows/s ({seconds:.1f} s, peak RSS "
                f"{peak_mb:.0f} MB)",
                file=sys.stderr,
            )
    return [bulk_row(name, count, runs[name]) for name, _ in checkouts]


def timed_load(csv_path: Path, db_path: Path, root: Path) -> tuple[float, float]:
    """Load csv_path into a new empty database with the ingest package of `root`."""
    print(f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    env = bench_env(db_path)
    env["PYTHONPATH"] = str(root)
    seconds, peak_mb, _ = timed_process(["ingest", str(csv_path)], env, cwd=root)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return seconds, peak_mb


def bulk_row(name: str, count: int, runs: list[tuple[float, float]]) -> list:
    seconds = statistics.median(s for s, _ in runs)
    peak_mb = max(p for _, p in runs)
    every = ", ".join(f"{count / s:,.0f}" for s, _ in runs)
    label = f"python -m ingest ({name}), {count:,}-row CSV into an empty database"
    return [
        label,
        "100,000 rows/s (target)",
        f"{count / seconds:,.0f} rows/s median of {every} ({seconds:.1f} s, peak RSS "
        f"{peak_mb:.0f} MB)",
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
    parser.add_argument("--only", choices=["post", "bulk"], help="run only this benchmark")
    parser.add_argument("--bulk-rounds", type=int, default=1, help="bulk loads per version")
    parser.add_argument(
        "--against", type=Path, help="another checkout whose loader runs alternately with this one"
    )
    args = parser.parse_args()
    print(machine(), file=sys.stderr)
    with workdir() as tmp:
        rows = [] if args.only == "bulk" else [post_rows(args, tmp)]
        if args.rows and args.only != "post":
            rows += bulk_rows(args, tmp)
    print(table(["benchmark", "baseline", "measured", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
