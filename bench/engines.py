"""SQLite against PostgreSQL in the same run: bulk load, nightly job, POST /data,
GET /allocation, publish.

    .venv/bin/python bench/engines.py [--only bulk,nightly,post,read,publish] [--rounds 1]
                                      [--rows 1000000] [--experiments 10000]
                                      [--publish-experiments 100000]

PostgreSQL is a throwaway cluster (tests/postgres.py) with fsync, synchronous_commit and
full_page_writes on (the server's defaults, otherwise default settings), in a folder of
the same file system as the SQLite file (tempfile.gettempdir()), so both sync to the same
disk. Each benchmark runs on both engines back to back, and prints the load average
before each run on stderr:

- bulk: `python -m ingest` of a ~--rows CSV into an empty database (process wall time);
- nightly: `python -m scheduler run-once` on --experiments experiments (3 days each,
  1 worker), ratio PostgreSQL / SQLite, with each run's publish transaction;
- post: `POST /data` (two variants, reposting a day of one of 1,000 experiments) to
  `python -m api` with 16 connections (wrk when installed);
- read: `GET /allocation` of those 1,000 experiments after a `run-once`, 16 connections
  (served from memory on either engine);
- publish: PostgreSQL only, --publish-experiments experiments of one day: `run-once`
  while `POST /data` load runs against `python -m api` on the same database, in windows
  of 2 s; reports the job, its publish transaction and the worst window's p99.
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine, metric_rows, table, web_server, workdir, write_csv
from bench.load import run_load
from bench.nightly import publish_seconds, timed_process
from bench.write_path import post_body
from tests.postgres import Cluster

ENGINES = ("sqlite", "postgresql")


class Databases:
    """Fresh empty databases of either engine, by name."""

    def __init__(self, tmp: Path, cluster: Cluster):
        self.tmp, self.cluster = tmp, cluster

    def env(self, engine: str, name: str, **extra: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BANDIT_")}
        env["PYTHONPATH"] = str(ROOT)
        if engine == "sqlite":
            env["BANDIT_DATABASE_URL"] = f"sqlite:///{self.tmp / f'{name}.db'}"
        else:
            self.cluster.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            self.cluster.execute(f"CREATE DATABASE {name}")
            env["BANDIT_DATABASE_URL"] = self.cluster.url(name)
        env.update(extra)
        return env


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def bulk(args, dbs: Databases, tmp: Path) -> list[list]:
    csv_path = tmp / "bulk.csv"
    count = write_csv(csv_path, metric_rows(10_000, days=max(1, round(args.rows / 35_000))))
    seconds: dict[str, list[float]] = {e: [] for e in ENGINES}
    for r in range(args.rounds):
        for engine in ENGINES:
            env = dbs.env(engine, f"bulk{r}")
            note(f"bulk {engine}: {load_average()}")
            took, peak, _ = timed_process(["ingest", str(csv_path)], env)
            seconds[engine].append(took)
            note(f"bulk {engine}: {count / took:,.0f} rows/s ({took:.1f} s, peak {peak:.0f} MB)")
    rows = []
    for engine in ENGINES:
        s = statistics.median(seconds[engine])
        every = ", ".join(f"{count / t:,.0f}" for t in seconds[engine])
        rows.append(
            [f"python -m ingest, {count:,} rows, {engine}", f"{count / s:,.0f} rows/s ({every})"]
        )
    ratio = statistics.median(seconds["postgresql"]) / statistics.median(seconds["sqlite"])
    rows.append(["bulk load time, PostgreSQL / SQLite", f"{ratio:.2f}x"])
    return rows


def nightly(args, dbs: Databases, tmp: Path) -> list[list]:
    csv_path = tmp / "nightly.csv"
    write_csv(csv_path, metric_rows(args.experiments, days=3))
    envs = {}
    for engine in ENGINES:
        envs[engine] = dbs.env(engine, "nightly", BANDIT_SCHEDULE_TIMEZONE="UTC")
        timed_process(["ingest", str(csv_path)], envs[engine])
    times: dict[str, list[float]] = {e: [] for e in ENGINES}
    publishes: dict[str, list[str]] = {e: [] for e in ENGINES}
    for _ in range(args.rounds):
        for engine in ENGINES:
            note(f"nightly {engine}: {load_average()}")
            took, peak, log = timed_process(["scheduler", "run-once"], envs[engine])
            times[engine].append(took)
            publishes[engine].append(publish_seconds(log))
            note(
                f"nightly {engine}: {took:.2f} s, peak {peak:.0f} MB,"
                f" publish {publishes[engine][-1]}"
            )
    ratios = [p / s for p, s in zip(times["postgresql"], times["sqlite"], strict=True)]
    rows = [
        [
            f"run-once, {args.experiments:,} experiments, 1 worker, {engine}",
            f"{statistics.median(times[engine]):.1f} s (publish transaction "
            f"{', '.join(publishes[engine])})",
        ]
        for engine in ENGINES
    ]
    every = ", ".join(f"{r:.2f}" for r in ratios)
    rows.append(
        ["run-once time, PostgreSQL / SQLite", f"{statistics.median(ratios):.2f}x ({every})"]
    )
    return rows


def post_requests(experiments: int = 1000) -> list:
    return [("POST", "/data", post_body(e, c)) for e in range(experiments) for c in (5, 6)]


def seeded(dbs: Databases, tmp: Path, engine: str, name: str, experiments: int) -> dict:
    """A database holding exp_000000... with the control and variant arms that
    post_requests() reposts."""
    csv_path = tmp / f"seed{experiments}.csv"
    if not csv_path.exists():
        rows = (
            (f"exp_{e:06d}", "2025-12-22", arm, 1000, 10)
            for e in range(experiments)
            for arm in ("control", "variant")
        )
        with open(csv_path, "w") as f:
            f.write("experiment_id,date,variant_id,impressions,clicks\n")
            f.writelines(",".join(map(str, r)) + "\n" for r in rows)
    env = dbs.env(engine, name, BANDIT_SCHEDULE_TIMEZONE="UTC")
    timed_process(["ingest", str(csv_path)], env)
    return env


def loaded(args, envs: dict, requests: list, what: str) -> list[list]:
    """`what` with 16 connections against `python -m api` on each engine, --rounds rounds
    alternating: each engine's median round, and the ratio of the medians."""
    results: dict[str, list] = {e: [] for e in ENGINES}
    for _ in range(args.rounds):
        for engine in ENGINES:
            with web_server(envs[engine]) as port:
                run_load(port, requests, 1, 16, args.tool)  # warm up
                note(f"{what} {engine}: {load_average()}")
                results[engine].append(run_load(port, requests, args.seconds, 16, args.tool))
                note(f"{what} {engine}: {results[engine][-1]}")
    rows = []
    for engine in ENGINES:
        r = sorted(results[engine], key=lambda x: x.requests_per_s)[len(results[engine]) // 2]
        rows.append(
            [
                f"{what}, 16 connections, {engine}",
                f"{r.requests_per_s:,.0f} req/s (p99 {r.p99_ms:.1f} ms, {r.errors} errors)",
            ]
        )
    ratio = statistics.median(r.requests_per_s for r in results["postgresql"]) / statistics.median(
        r.requests_per_s for r in results["sqlite"]
    )
    rows.append([f"{what} req/s, PostgreSQL / SQLite", f"{ratio:.2f}"])
    return rows


def post(args, dbs: Databases, tmp: Path) -> list[list]:
    envs = {e: seeded(dbs, tmp, e, "post", 1000) for e in ENGINES}
    return loaded(args, envs, post_requests(), "POST /data")


def read_requests(experiments: int = 1000) -> list:
    return [("GET", f"/allocation?experiment_id=exp_{e:06d}", None) for e in range(experiments)]


def read(args, dbs: Databases, tmp: Path) -> list[list]:
    """GET /allocation after a publish: answered from each web process's memory, so the
    engine should not show."""
    envs = {e: seeded(dbs, tmp, e, "read", 1000) for e in ENGINES}
    for engine in ENGINES:
        timed_process(["scheduler", "run-once"], envs[engine])
    return loaded(args, envs, read_requests(), "GET /allocation")


def publish(args, dbs: Databases, tmp: Path) -> list[list]:
    """run-once at --publish-experiments on PostgreSQL while POST /data load runs."""
    n = args.publish_experiments
    env = seeded(dbs, tmp, "postgresql", "publish", n)
    windows: list = []
    stop = threading.Event()
    with web_server(env) as port:

        def load() -> None:
            while not stop.is_set():
                windows.append(
                    (time.monotonic(), run_load(port, post_requests(), 2, 16, args.tool))
                )

        note(f"publish postgresql: {load_average()}")
        loader = threading.Thread(target=load)
        loader.start()
        started = time.monotonic()
        try:
            took, peak, log = timed_process(["scheduler", "run-once"], env)
        finally:
            stop.set()
            loader.join()
    during = [w for at, w in windows if at <= started + took + 2]
    worst = max(during, key=lambda w: w.p99_ms)
    each = ", ".join(f"{w.requests_per_s:.0f}/s p99 {w.p99_ms:.0f} ms" for w in during)
    note(f"publish: run-once {took:.1f} s, {publish_seconds(log)}; windows: {each}")
    return [
        [
            f"run-once, {n:,} experiments (1 day, 2 arms), postgresql",
            f"{took:.1f} s, peak {peak:.0f} MB",
        ],
        ["its publish transaction", publish_seconds(log)],
        [
            "POST /data during it (16 connections, 2 s windows): worst window",
            f"p99 {worst.p99_ms:.0f} ms, {worst.requests_per_s:,.0f} req/s, "
            f"{sum(w.errors for w in during)} errors in {len(during)} windows",
        ],
    ]


BENCHES = {"bulk": bulk, "nightly": nightly, "post": post, "read": read, "publish": publish}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--experiments", type=int, default=10_000)
    parser.add_argument("--publish-experiments", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    note(machine())
    rows = []
    with workdir() as tmp, contextlib.ExitStack() as stack:
        cluster = Cluster(durable=True, parent=tempfile.gettempdir()).start()
        stack.callback(cluster.stop)
        dbs = Databases(tmp, cluster)
        for name in args.only.split(","):
            rows += BENCHES[name](args, dbs, tmp)
            print(table(["benchmark", "figure"], rows[-3:]), file=sys.stderr, flush=True)
    print(table(["benchmark", "figure"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
