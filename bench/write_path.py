"""Write path: POST /data against plain sqlite3 upserts, and the bulk loader's rows per second.

    .venv/bin/python bench/write_path.py [--seconds 5] [--rounds 5] [--rows 1000000]
    .venv/bin/python bench/write_path.py --only bulk --bulk-rounds 3 --against ../other-checkout

POST /data: 1,000 experiments with two variants each exist; every request reposts one
experiment's day (an upsert of two rows) to `python -m api` (one process, as the Procfile
starts it), with --connections (16) connections. Three baselines, measured in the same
rounds, alternately with the service:

- plain upserts with Python's own sqlite3 module, one `BEGIN IMMEDIATE` ... `COMMIT` per
  two-row upsert, on the same database file and the same SQLite settings (WAL,
  synchronous=FULL by default): one after another in one process, and from --connections
  processes at once, each with its own connection (what one transaction per request
  does with that many clients);
- a bare ASGI app on the same uvicorn + httptools + uvloop that reads and parses the same
  bodies (bench/bare_app.py post_app), with the same load generator.

The servers are started once; in each round the service is loaded right after the
sqlite3 processes (each server gets 1 s of the same load first, as after a restart). The
ratios are each round's own, and the table gives their median and every round's.

Each round also posts to `python -m api` with server.writer_process = false (the writes
in a thread of the web process instead of its writer process).

With --workers N, each round also posts to `python -m api` with server.workers = N (N web
processes on the port, each with its own writer thread and group commit).

Each round also times os.fsync after a 4 KiB write to a file in the database's folder,
so the reader sees what one commit's sync costs on this disk at that moment, and gives
the share of this machine's CPU time the hypervisor took for other guests (/proc/stat's
steal) while the sqlite3 processes and while the writer process were loaded: on a shared
VM it moves from second to second, and a round that one of the two lost more of says
more about the host than about the code.

Bulk: a CSV of about --rows rows loaded by `python -m ingest` into an empty database
(process wall time, from start to exit, so interpreter start and imports count against
it; and the loader's own peak RSS), --bulk-rounds times. With --against DIR, each round
first loads the same CSV with the code of another checkout of this project (its ingest
package, run from DIR), so that two versions are compared under the same machine load;
every run is printed to stderr with the load average before it, and each version's row
gives its median rows/s.
"""

import argparse
import contextlib
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ROOT,
    bench_env,
    machine,
    metric_rows,
    steal_share,
    table,
    use_database,
    uvicorn_server,
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


def stored_now() -> str:
    """The time as the service stores updated_at (to the microsecond). A repost that
    leaves a row byte for byte as it was makes SQLite write nothing, and its COMMIT
    skips the sync: with the time to the second, most of these upserts were such no-ops
    (100,704 transactions/s before 2026-12-01)."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(" ")


def stdlib_connection(db_path: Path, settings) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={settings.synchronous}")
    conn.execute(f"PRAGMA busy_timeout={settings.busy_timeout_ms}")
    return conn


def stdlib_upserts(db_path: Path, pairs: list[tuple], seconds: float, start: int = 0):
    """Python's own sqlite3, one transaction per two-row upsert, on the service's SQLite
    settings (WAL, its synchronous level), as fast as one connection can go: how many
    committed, and how many gave up on the lock after busy_timeout_ms."""
    from core.settings import load_settings

    conn = stdlib_connection(db_path, load_settings().database)
    done = busy = 0
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        i = (start + done * 2) % len(pairs)
        now = stored_now()  # as the service stores it, so no upsert is a no-op
        rows = [(e, v, DAY.isoformat(), 1000, done % 50, now) for e, v in pairs[i : i + 2]]
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # database is locked: a client would get a 503
            busy += 1
            continue
        conn.executemany(UPSERT, rows)
        conn.execute("COMMIT")
        done += 1
    conn.close()
    return done, busy


def stdlib_upserts_per_s(db_path: Path, pairs: list[tuple], seconds: float) -> float:
    started = time.perf_counter()
    done, _ = stdlib_upserts(db_path, pairs, seconds)
    return done / (time.perf_counter() - started)


def concurrent_writer(db_path, pairs, seconds, start, go, counts) -> None:
    go.wait()
    try:
        counts.put(stdlib_upserts(db_path, pairs, seconds, start))
    except BaseException:
        counts.put((0, 0))
        raise


def concurrent_upserts_per_s(db_path: Path, pairs: list[tuple], seconds: float, n: int):
    """The same upserts from n processes at once, each its own connection to the file:
    (committed per second, transactions that gave up on the lock)."""
    context = multiprocessing.get_context("fork")
    go, counts = context.Event(), context.Queue()
    workers = [
        context.Process(target=concurrent_writer, args=(db_path, pairs, seconds, k * 2, go, counts))
        for k in range(n)
    ]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    go.set()
    found = [counts.get(timeout=seconds + 60) for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    return sum(done for done, _ in found) / elapsed, sum(busy for _, busy in found)


def fsync_us(folder: Path, count: int = 500) -> tuple[float, float]:
    """Median and p99 of os.fsync after a 4 KiB write, in microseconds."""
    path, times = folder / "fsync.probe", []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        for i in range(count):
            os.pwrite(fd, b"x" * 4096, (i % 16) * 4096)
            started = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - started) * 1e6)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99)]


def loaded(name: str) -> None:
    print(f"{name}: load average {os.getloadavg()[0]:.2f}", file=sys.stderr)


def post_servers(args, db_path: Path, stack: contextlib.ExitStack) -> dict[str, int]:
    """The servers every round loads, started once (each idles while another is
    measured): {name: port}."""
    env = bench_env(db_path, BENCH_POST_ANSWER_SIZE=str(ANSWER_SIZE))
    thread_env = {**env, "BANDIT_SERVER_WRITER_PROCESS": "false"}
    servers = {
        "service": web_server(env),
        "thread": web_server(thread_env),
        "bare": uvicorn_server("bench.bare_app:post_app", env, probe_path="/"),
    }
    if args.workers > 1:
        servers["workers"] = web_server(env, workers=args.workers)
    return {name: stack.enter_context(server) for name, server in servers.items()}


def post_round(args, tmp: Path, db_path: Path, pairs, requests, ports: dict) -> dict:
    """One round, each measurement after the other: the figures of one moment. The
    service is loaded right after the sqlite3 processes, its main baseline: on a shared
    machine the speed of the moment moves a lot within seconds."""
    found = {}
    loaded("fsync")
    found["fsync"] = fsync_us(tmp)
    loaded("sqlite3, 1 connection")
    found["sequential"] = stdlib_upserts_per_s(db_path, pairs, args.seconds)
    loaded(f"sqlite3, {args.connections} processes")
    (found["concurrent"], found["busy"]), found["steal", "concurrent"] = steal_share(
        lambda: concurrent_upserts_per_s(db_path, pairs, args.seconds, args.connections)
    )
    for name, port in ports.items():
        loaded(name)
        run_load(port, requests, 1, args.connections, args.tool)  # warm, as after a restart
        found[name], found["steal", name] = steal_share(
            lambda port=port: run_load(port, requests, args.seconds, args.connections, args.tool)
        )
    return found


ANSWER_SIZE = len(
    b'{"experiment_id":"exp_000000","date":"2025-12-22","variants_stored":2,"new_variants":[]}'
)


def post_rows(args, tmp: Path) -> list:
    db_path = tmp / "post.db"
    pairs = seed(db_path, args.experiments)
    requests = [("POST", "/data", post_body(e, c)) for e in range(args.experiments) for c in (5, 6)]
    rounds = []
    with contextlib.ExitStack() as stack:
        ports = post_servers(args, db_path, stack)
        for number in range(args.rounds):
            rounds.append(post_round(args, tmp, db_path, pairs, requests, ports))
            print(f"round {number + 1}: {rounds[-1]}", file=sys.stderr)
    return post_table(args, rounds)


def ratio_cell(rounds: list[dict], against: str, measured: str = "service") -> str:
    """The median of the rounds' own ratios, then every round's."""
    ratios = [r[measured].requests_per_s / rate(r[against]) for r in rounds]
    every = ", ".join(f"{x:.2f}" for x in ratios)
    return f"{statistics.median(ratios):.2f} (rounds {every})"


def rate(value) -> float:
    return value if isinstance(value, float) else value.requests_per_s


def median_of(rounds: list[dict], name: str) -> float:
    return statistics.median(rate(r[name]) for r in rounds)


def measured_cell(rounds: list[dict], name: str) -> str:
    median = sorted((r[name] for r in rounds), key=rate)[len(rounds) // 2]
    return (
        f"{median.requests_per_s:,.0f} req/s (p99 {median.p99_ms:.1f} ms, "
        f"{sum(r[name].errors for r in rounds)} errors)"
    )


def post_table(args, rounds: list[dict]) -> list[list]:
    measured = measured_cell(rounds, "service")
    bare = sorted((r["bare"] for r in rounds), key=rate)[len(rounds) // 2]
    fsyncs = ", ".join(f"{m:,.0f} / {p:,.0f}" for m, p in (r["fsync"] for r in rounds))
    n = args.connections
    label = f"POST /data (2 variants), python -m api, 1 process (writer process), {n} connections"
    rows = [
        [
            label,
            f"{median_of(rounds, 'sequential'):,.0f} tx/s, sqlite3, 1 connection",
            measured,
            ratio_cell(rounds, "sequential"),
        ],
        [
            label,
            f"{median_of(rounds, 'concurrent'):,.0f} tx/s, sqlite3, {n} processes "
            f"({sum(r['busy'] for r in rounds)} gave up on the lock)",
            measured,
            ratio_cell(rounds, "concurrent"),
        ],
        [
            label,
            f"{bare.requests_per_s:,.0f} req/s (p99 {bare.p99_ms:.1f} ms), bare ASGI app "
            "parsing the body",
            measured,
            ratio_cell(rounds, "bare"),
        ],
    ]
    label = f"POST /data (2 variants), python -m api, writer thread, {n} connections"
    rows += [
        [
            label,
            f"{median_of(rounds, 'concurrent'):,.0f} tx/s, sqlite3, {n} processes",
            measured_cell(rounds, "thread"),
            ratio_cell(rounds, "concurrent", "thread"),
        ],
        [
            label,
            "python -m api, writer process (above)",
            measured_cell(rounds, "thread"),
            ratio_cell(rounds, "service", "thread"),
        ],
    ]
    if args.workers > 1:
        label = f"POST /data (2 variants), python -m api, {args.workers} workers, {n} connections"
        rows += [
            [
                label,
                f"{median_of(rounds, key):,.0f} tx/s, sqlite3, {against}",
                measured_cell(rounds, "workers"),
                ratio_cell(rounds, key, "workers"),
            ]
            for against, key in ((f"{n} processes", "concurrent"), ("1 connection", "sequential"))
        ]
        rows.append(
            [
                label,
                "python -m api, 1 process (above)",
                measured_cell(rounds, "workers"),
                ratio_cell(rounds, "service", "workers"),
            ]
        )
    fsync_row = [
        "os.fsync after a 4 KiB write, database folder",
        "",
        f"median / p99 us: {fsyncs}",
        "",
    ]
    steals = ", ".join(
        f"{r['steal', 'concurrent']:.0%} / {r['steal', 'service']:.0%}" for r in rounds
    )
    steal_row = [
        "CPU time the host gave to other guests (steal), per round",
        "",
        f"during sqlite3, {n} processes / during the writer process: {steals}",
        "",
    ]
    return [*rows, fsync_row, steal_row]


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--workers", type=int, default=1, help="also POST to python -m api with this many workers"
    )
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
        rows = [] if args.only == "bulk" else post_rows(args, tmp)
        if args.rows and args.only != "post":
            rows += bulk_rows(args, tmp)
    print(table(["benchmark", "baseline", "measured", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
