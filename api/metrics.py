"""Prometheus metrics at GET /metrics (prometheus-client).

What the web process does itself (requests, rows POSTed) is counted as it happens (the
POST /data fast path's counts within a second, see HeldCounts); what any process may have
done (runs, bulk loads) is read from the database at each scrape,
so the clock's nightly runs show in every web process's metrics. With several web
workers, PROMETHEUS_MULTIPROC_DIR (set by `python -m api`) makes the counters add up
across them (prometheus-client's multiprocess mode).

The fast path counts with fast_read(path, status): a pre-bound counter child's inc(), or
nothing when server.metrics is off. Its answers are counted but not timed: they take microseconds,
before any routing, and timing them would cost more than the counting. The POST /data
fast path (api/fastpost.py) counts and times its answers with answered(), as HttpMetrics
records those that reach the app, into the same series; they are held as plain numbers
and added to the metrics together (HeldCounts), before every scrape and at most a second
later.
"""

import functools
import os
import tempfile
import threading
import time
from bisect import bisect_left

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.responses import Response
from starlette.routing import Match

from core.db import database
from core.runs_view import BULK_ROWS_COUNTER, counter_value, latest_finished_run, runs_by_outcome
from scheduler.runs import last_scheduled_success

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
FOLD_AFTER_S = 1.0  # POST /data's fast-path counts reach the metrics within this


class Folding:
    """The first collector of REGISTRY: whatever reads it (a scrape, a test) first gets
    the fast path's held counts added (HeldCounts)."""

    def describe(self):
        return []  # no metrics of its own (else registering it would collect it)

    def collect(self):
        HELD.fold()
        return []


REGISTRY = CollectorRegistry(auto_describe=True)
REGISTRY.register(Folding())
HTTP_REQUESTS = Counter(
    "bandit_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "bandit_http_request_duration_seconds",
    "Time to answer HTTP requests that reach the app (not fast-path reads), by route",
    ["route", "method"],
    registry=REGISTRY,
    buckets=DURATION_BUCKETS,
)
POSTED_ROWS = Counter(
    "bandit_post_rows", "Daily metric rows stored by POST /data", registry=REGISTRY
)
# One pre-bound counter child per fast-path route and status, looked up by a dict.
FAST_READS = {
    (path, status): HTTP_REQUESTS.labels(path, "GET", str(status)).inc
    for path in ("/allocation", "/allocations", "/assign")
    for status in (200, 304)
}


def share_between_workers(workers: int) -> None:
    """Before uvicorn starts several workers: a fresh directory for their counts, so each
    start begins at zero (an operator who sets the variable must empty it at each start)."""
    if workers > 1 and not os.environ.get(MULTIPROCESS_VARIABLE):
        os.environ[MULTIPROCESS_VARIABLE] = tempfile.mkdtemp(prefix="bandit-metrics-")


def nothing(*args) -> None:
    pass


def counted(path: str, status: int) -> None:
    FAST_READS[path, status]()


def timed(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_SECONDS.labels(route, method).observe(seconds)


class HeldCounts:
    """The counts of requests answered before the middlewares (POST /data's fast path)
    and the rows they stored, held as plain numbers under one lock and added to the
    Prometheus metrics together: before anything reads REGISTRY (Folding) or scrapes this
    process, and FOLD_AFTER_S after the first count since the last time (a timer
    thread), so that in multiprocess mode, where a scrape of another worker reads this
    one's files, they are at most that late. prometheus-client's inc() and observe()
    check and lock on every call: the three a POST made were a sixth of the fast path's
    instructions (bench/README.md)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.due = False  # a fold is scheduled
        self.answers: dict[tuple, int] = {}  # (route, method, status): count
        self.durations: dict[tuple, list] = {}  # (route, method): [sum, count per bucket]
        self.rows = 0

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        key, bounds = (route, method, status), upper_bounds(route, method)
        with self.lock:
            self.answers[key] = self.answers.get(key, 0) + 1
            held = self.durations.get(key[:2])
            if held is None:
                held = self.durations[key[:2]] = [0.0] + [0] * len(bounds)
            held[0] += seconds
            held[1 + bisect_left(bounds, seconds)] += 1  # the bucket observe() would pick
            start = self.held()
        if start:
            self.schedule()

    def posted(self, rows: int) -> None:
        with self.lock:
            self.rows += rows
            start = self.held()
        if start:
            self.schedule()

    def held(self) -> bool:
        """A count is held (the lock is held): whether a fold must be scheduled for it."""
        start, self.due = not self.due, True
        return start

    def schedule(self) -> None:
        timer = threading.Timer(FOLD_AFTER_S, self.fold)
        timer.daemon = True
        timer.start()

    def fold(self) -> None:
        with self.lock:
            answers, durations, rows = self.answers, self.durations, self.rows
            self.answers, self.durations, self.rows, self.due = {}, {}, 0, False
        for (route, method, status), count in answers.items():
            HTTP_REQUESTS.labels(route, method, str(status)).inc(count)
        for key, (seconds, *buckets) in durations.items():
            # What observe() does one answer at a time: the sum, and each one's bucket.
            child = HTTP_SECONDS.labels(*key)
            child._sum.inc(seconds)
            for bucket, count in zip(child._buckets, buckets, strict=True):
                if count:
                    bucket.inc(count)
        if rows:
            POSTED_ROWS.inc(rows)


@functools.cache
def upper_bounds(route: str, method: str) -> list[float]:
    """The bucket bounds of HTTP_SECONDS for a route and method, +Inf last."""
    return HTTP_SECONDS.labels(route, method)._upper_bounds


HELD = HeldCounts()
held_answer = HELD.answered  # a request answered before the middlewares, as HttpMetrics records it
fast_read = counted
answered = held_answer


def set_enabled(enabled: bool) -> None:
    """Whether the fast paths count (the benchmark compares both)."""
    global fast_read, answered
    fast_read, answered = (counted, held_answer) if enabled else (nothing, nothing)


count_posted = HELD.posted  # rows stored by POST /data


def leaf_routes(routes) -> list:
    """The app's routes, with included routers opened (FastAPI wraps each include)."""
    found = []
    for route in routes:
        included = getattr(route, "original_router", None)
        found += leaf_routes(included.routes) if included is not None else [route]
    return found


def route_label(routes, scope) -> str:
    """The route's template (bounded cardinality); a request refused before routing (401,
    413) is matched here, and one that matches no route is "unmatched"."""
    route = scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)
    return getattr(route, "path", "unmatched")


class HttpMetrics:
    """ASGI middleware: counts and times every request that reaches the app."""

    def __init__(self, app, routes_of):
        self.app = app
        self.routes_of = routes_of  # the FastAPI app, whose routes name what is counted
        self.routes: list | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [500]

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self.record(scope, status[0], time.perf_counter() - started)

    def record(self, scope, status: int, seconds: float) -> None:
        if self.routes is None:  # read once every route is included
            self.routes = leaf_routes(self.routes_of.routes)
        route = route_label(self.routes, scope)
        method = scope["method"] if scope["method"] in METHODS else "other"
        timed(route, method, status, seconds)


def gauge(name: str, help_text: str, value: float | None, labels=None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=list(labels or {}))
    if value is not None:
        family.add_metric(list((labels or {}).values()), value)
    return family


def run_families(outcomes, last_success, last_run) -> list:
    runs = CounterMetricFamily(
        "bandit_runs", "Runs in the run table, by trigger and status", labels=["trigger", "status"]
    )
    for trigger, status, count in outcomes:
        runs.add_metric([trigger, status], count)
    phases = GaugeMetricFamily(
        "bandit_last_run_phase_seconds",
        "Phases of the newest finished run: compute, staging, publish_lock (write lock held)",
        labels=["phase"],
    )
    for phase, seconds in ((last_run or {}).get("phase_seconds") or {}).items():
        phases.add_metric([phase], seconds)
    success = last_success.timestamp() if last_success else None
    duration = (last_run or {}).get("duration_seconds")
    return [
        runs,
        phases,
        gauge("bandit_last_run_duration_seconds", "Duration of the newest finished run", duration),
        gauge(
            "bandit_last_scheduled_success_timestamp_seconds",
            "Start of the newest successful nightly or catch-up run (Unix time)",
            success,
        ),
    ]


class DatabaseCollector:
    """Run and bulk-load figures, read from the database at each scrape."""

    def collect(self):
        try:
            with database.connection_context():
                facts = runs_by_outcome(), last_scheduled_success(), latest_finished_run()
                bulk = counter_value(BULK_ROWS_COUNTER)
        except Exception:  # /metrics still answers, and says the database did not
            yield gauge("bandit_database_up", "Whether the database answered the scrape", 0)
            return
        yield gauge("bandit_database_up", "Whether the database answered the scrape", 1)
        yield from run_families(*facts)
        bulk_rows = CounterMetricFamily("bandit_bulk_rows", "Rows stored by the bulk loader")
        bulk_rows.add_metric([], bulk)
        yield bulk_rows


class CacheCollector:
    """This process's allocation cache: experiments served and seconds since it refreshed."""

    def __init__(self, cache):
        self.cache = cache

    def collect(self):
        refreshed = self.cache.refreshed_at
        age = time.monotonic() - refreshed if refreshed is not None else None
        yield gauge("bandit_experiments_served", "Experiments in the cache", len(self.cache))
        yield gauge("bandit_cache_age_seconds", "Seconds since the cache last refreshed", age)


def scrape_registry(cache) -> CollectorRegistry:
    """The registry a scrape reads: this process's (or, in multiprocess mode, every
    worker's) counters, plus the database's and the cache's figures."""
    if os.environ.get(MULTIPROCESS_VARIABLE):
        HELD.fold()  # the scrape reads the workers' files, not REGISTRY (and its Folding)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(ProcessMetrics())
    registry.register(DatabaseCollector())
    registry.register(CacheCollector(cache))
    return registry


class ProcessMetrics:
    """REGISTRY's metrics, lent to a scrape's registry."""

    def collect(self):
        return REGISTRY.collect()


def metrics_response(cache) -> Response:
    return Response(generate_latest(scrape_registry(cache)), media_type=CONTENT_TYPE_LATEST)
