"""Shared helpers for the benchmarks: free ports, server processes, timing, table rows.

Every benchmark measures its baseline in the same run and reports the ratio, because
absolute figures on a shared machine move from run to run while ratios hold.
"""

import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    """A port nobody listens on now: bind port 0 and let the kernel choose."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_env(db_path: Path, **extra: str) -> dict:
    """The environment for a child process: this checkout, one temporary database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANDIT_")}
    env["BANDIT_DATABASE_PATH"] = str(db_path)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def use_database(db_path: Path, **extra: str) -> None:
    """Point this process's settings at db_path (before load_settings is called)."""
    for name in [n for n in os.environ if n.startswith("BANDIT_")]:
        del os.environ[name]
    os.environ["BANDIT_DATABASE_PATH"] = str(db_path)
    os.environ.update(extra)


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bandit-bench-") as tmp:
        yield Path(tmp)


def wait_until_up(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as e:
            if getattr(e, "code", None):  # an HTTP error status: the server answers
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"server at {url} did not start") from e
            time.sleep(0.05)


@contextlib.contextmanager
def uvicorn_server(app: str, env: dict, probe_path: str = "/") -> Iterator[int]:
    """One uvicorn worker on 127.0.0.1 and a free port; stopped on exit."""
    port = free_port()
    command = [PYTHON, "-m", "uvicorn", *app.split(), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    command += ["--http", "httptools", "--loop", "uvloop"]  # what python -m api runs on
    with serving(command, env, port, probe_path):
        yield port


@contextlib.contextmanager
def web_server(env: dict, workers: int = 1, probe_path: str = "/healthz") -> Iterator[int]:
    """`python -m api` as the Procfile starts it, on a free port; stopped on exit."""
    port = free_port()
    env = {**env, "BANDIT_SERVER_PORT": str(port), "BANDIT_SERVER_WORKERS": str(workers)}
    with serving([PYTHON, "-m", "api"], env, port, probe_path):
        yield port


@contextlib.contextmanager
def serving(command: list[str], env: dict, port: int, probe_path: str) -> Iterator[None]:
    process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}{probe_path}")
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def metric_rows(experiments: int, seed: int = 1, days: int = 1) -> Iterator[tuple]:
    """(experiment_id, date, variant_id, impressions, clicks) for 2 to 5 arms each."""
    rng = random.Random(seed)
    first = date(2025, 12, 22) - timedelta(days=days - 1)
    for e in range(experiments):
        arms = rng.randint(2, 5)
        for d in range(days):
            for a in range(arms):
                impressions = rng.randint(100, 100_000)
                clicks = rng.randint(0, impressions // 10)
                yield f"exp_{e:06d}", first + timedelta(days=d), f"arm_{a}", impressions, clicks


def write_csv(path: Path, rows) -> int:
    count = 0
    with open(path, "w") as f:
        f.write("experiment_id,date,variant_id,impressions,clicks\n")
        for e, d, v, i, c in rows:
            f.write(f"{e},{d.isoformat()},{v},{i},{c}\n")
            count += 1
    return count


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def stolen_s() -> float:
    """CPU seconds the hypervisor has given to other guests instead of this machine, all
    cores together, since boot (/proc/stat's steal; 0 where there is none to read)."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
    except OSError:
        return 0.0
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def steal_share(measure):
    """(measure(), the share of this machine's CPU time stolen while it ran): a figure taken
    while the host ran other guests on these cores is lower for that reason alone."""
    stolen, started = stolen_s(), time.perf_counter()
    result = measure()
    elapsed = time.perf_counter() - started
    return result, (stolen_s() - stolen) / (elapsed * (os.cpu_count() or 1))


def machine() -> str:
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores, load average {load:.2f} at start, Python {sys.version.split()[0]}"
    )
