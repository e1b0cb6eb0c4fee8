#!/usr/bin/env bash
# Run the four benchmarks alternately in another checkout (DIR, e.g. a clone of an older
# commit, with its own .venv) and in this one, one after the other:
#   bench/compare.sh DIR [--quick]
# --quick skips the 100,000-experiment nightly run (about 5 minutes a side).
set -euo pipefail
other=$(cd "$1" && pwd); here=$(cd "$(dirname "$0")/.." && pwd)
benchmarks=("bench/read_path.py" "bench/write_path.py" "bench/nightly.py --workers 1")
[ "${2:-}" = "--quick" ] ||
  benchmarks+=("bench/nightly.py --experiments 100000 --days 1 --workers 1 --rounds 1")
for benchmark in "${benchmarks[@]}"; do
  for side in "$other" "$here"; do
    echo "##### $side: $benchmark ($(date -u +%T), load $(cut -d' ' -f1 /proc/loadavg))"
    (cd "$side" && read -ra args <<< "$benchmark" && .venv/bin/python "${args[@]}")
  done
done
