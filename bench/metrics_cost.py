"""What counting costs the read path: GET /allocation with server.metrics on, against
the same service with it off (the baseline).

    .venv/bin/python bench/metrics_cost.py [--experiments 1000] [--seconds 5] [--rounds 5]

Same database, load generator and paths as bench/read_path.py; rounds alternate off and
on, and the median round of each is reported. Target: on at least 0.95 of off.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import bench_env, machine, table, workdir
from bench.read_path import measure, median_result, seed

APP = "--factory api.app:create_app"


def rounds(env: dict, paths: list[str], args) -> tuple[list, list]:
    off, on = [], []
    for number in range(args.rounds):
        off += measure(APP, {**env, "BANDIT_SERVER_METRICS": "false"}, paths, args)
        on += measure(APP, {**env, "BANDIT_SERVER_METRICS": "true"}, paths, args)
        print(f"round {number + 1}: off {off[-1]}, on {on[-1]}", file=sys.stderr)
    return off, on


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
    print(table(header, [row]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
