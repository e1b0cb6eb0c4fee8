"""The settings table: one row per key, datasette-style. Everything else about a setting
(its dataclass field, check, environment name, and for a policy key its column and request
field) is built from its row; tests check config.toml and the README's table against it."""

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def in_a_directory(path: str) -> bool:
    """A database path must name a file in an existing directory: opening it would
    otherwise fail later with a bare "unable to open database file"."""
    return path.strip() != "" and Path(path).parent.is_dir()


SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


def database_url(url: str) -> bool:
    """sqlite:///PATH (a file in an existing directory) or postgresql://..."""
    if url.startswith(SQLITE_PREFIX):
        return in_a_directory(url[len(SQLITE_PREFIX) :])
    return url.startswith(POSTGRES_PREFIXES) and len(url) > len("postgresql://")


@dataclass(frozen=True)
class Between:
    """A check: low to high, an open end excluding its bound. The API's schema shows the
    bounds, and the tests probe both paths at them."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def __call__(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def json_schema(self) -> dict:
        return {
            "exclusiveMinimum" if self.low_open else "minimum": self.low,
            "exclusiveMaximum" if self.high_open else "maximum": self.high,
        }


@dataclass(frozen=True)
class OneOf:
    choices: tuple[str, ...]

    def __call__(self, value) -> bool:
        return value in self.choices

    def json_schema(self) -> dict:
        return {"enum": list(self.choices)}


@dataclass(frozen=True)
class Setting:
    """One key: its type is its default's; `expected` says what a good value is, in the
    words of every refusal; `help` is the meaning column of the README's table."""

    section: str
    key: str
    default: bool | int | float | str
    check: Callable[[object], bool] | None
    expected: str
    help: str

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def env_name(self) -> str:
        return f"BANDIT_{self.section}_{self.key}".upper()

    def refusal(self, value) -> str | None:
        """Why a value of the right type is refused, or None: the same words whether the
        value comes from config.toml, the environment or PUT /experiments/{id}/settings."""
        if self.check is None or self.check(value):
            return None
        return f"expected {self.expected}, got {value!r}"


def _valid_timezone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _hh_mm(value: str) -> bool:
    return re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value) is not None


DAYS = Between(0, 3650)
FRACTION = Between(0, 1, low_open=True)  # above 0, at most 1

# fmt: off
SETTINGS = (
    Setting("database", "url", "sqlite:///bandit.db", database_url,
            "sqlite:///PATH (a file in a directory that exists) or postgresql://...",
            "The database web and clock share: `sqlite:///PATH` (relative to the working"
            " directory; `sqlite:////var/lib/bandit/bandit.db` for an absolute path) or"
            " `postgresql://USER@HOST:PORT/NAME` (see \"Running on several hosts\"). A"
            " password is read only from `BANDIT_DATABASE_URL` (or libpq's `PGPASSWORD` /"
            " `PGPASSFILE`), never from a file."),
    Setting("database", "path", "bandit.db", lambda v: in_a_directory(v),
            "a file path in a directory that exists",
            "The SQLite file, as before `database.url`: the same as"
            " `database.url = \"sqlite:///PATH\"`; setting both to different files is an error."),
    Setting("database", "create_if_missing", True, None, "",
            "Make an empty database when `database.path` does not exist (a first start)."
            " Set `false` once it exists: a missing file then stops every process at start"
            " instead of starting empty; `python -m core init` makes one."),
    Setting("database", "busy_timeout_ms", 5000, Between(0, 600_000), "0 to 600000",
            "How long a writer waits for the write lock, in ms."),
    Setting("database", "synchronous", "FULL", OneOf(("OFF", "NORMAL", "FULL", "EXTRA")),
            "one of OFF, NORMAL, FULL, EXTRA",
            "SQLite `synchronous`: `OFF`, `NORMAL`, `FULL` or `EXTRA`. `FULL` makes an"
            " acknowledged write survive a power cut."),
    Setting("schedule", "time", "23:50", _hh_mm, "HH:MM on a 24-hour clock",
            "Local time (HH:MM) of the nightly run, which computes tomorrow's split; a time"
            " that a daylight-saving change skips or repeats in the zone is refused at start."),
    Setting("schedule", "timezone", "UTC", _valid_timezone,
            "an IANA time zone such as Europe/Berlin",
            'IANA zone for the schedule and for "today" and "tomorrow".'),
    Setting("schedule", "misfire_grace_seconds", 3600, Between(1, 86_400), "1 to 86400",
            "A run delayed (busy or paused clock) by up to this long still runs, once."),
    Setting("schedule", "catch_up", True, None, "",
            "On start, run at once if the last scheduled run has no successful run since."),
    Setting("schedule", "lease_seconds", 60, Between(2, 3_600), "2 to 3600",
            "A running job renews a lease on its `run` row every third of this (2 to 3600)."
            " A row whose lease ran out (its process died) is marked `failed`; while a lease"
            " is live, no second clock starts the same scheduled run."),
    Setting("schedule", "retry_seconds", 600, Between(0, 86_400), "0 to 86400",
            "How long a scheduled run keeps trying when another writer holds the write lock"
            " (waiting 1 s, 2 s, 4 s ... up to a minute between tries) before it fails with"
            " that reason in its row."),
    Setting("sampling", "samples", 10_000, Between(100, 1_000_000), "100 to 1000000",
            "Joint Monte Carlo draws per experiment (100 to 1,000,000)."),
    Setting("sampling", "prior_alpha", 1.0, Between(0, 1e6, low_open=True), "greater than 0",
            "Beta prior alpha (pseudo-clicks)."),
    Setting("sampling", "prior_beta", 1.0, Between(0, 1e6, low_open=True), "greater than 0",
            "Beta prior beta (pseudo-non-clicks)."),
    Setting("sampling", "workers", 1, Between(1, 64), "1 to 64",
            "Processes the nightly job spreads experiments over (1 to 64); results are"
            " identical for any number. At most the number of cores."),
    Setting("sampling", "max_active_arms", 100, Between(2, 1_000), "2 to 1000",
            "Most active (not archived) arms an experiment may have: a POST /data or bulk"
            " load adding more, or an unarchive past it, is refused (422). The job and"
            " `GET /experiments/{id}` hold `sampling.samples` x arms draws for one experiment"
            " (8 MB at 100 arms and 10,000 samples)."),
    Setting("server", "host", "127.0.0.1", None, "", "Address the web process binds to."),
    Setting("server", "port", 8000, Between(1, 65_535), "1 to 65535",
            "Port the web process binds to."),
    Setting("server", "refresh_ms", 250, Between(10, 1_000), "10 to 1000",
            "How often the web process looks for newly published allocations (10 to 1000 ms)."),
    Setting("server", "max_body_bytes", 1_048_576, Between(1_024, 64 * 2**20),
            "1024 to 67108864",
            "Request bodies larger than this (1 MiB) get 413, whether or not they declare a"
            " length."),
    Setting("server", "header_timeout_seconds", 10, Between(1, 300), "1 to 300",
            "A connection that has not sent a whole request's headers this long after it"
            " opened (or after its last response), or whose request body stops arriving"
            " for this long, is closed: slow clients cannot hold sockets."),
    Setting("server", "max_connections", 1000, Between(1, 100_000), "1 to 100000",
            "Connections the web process serves at once (uvicorn's `limit_concurrency`);"
            " requests past it get 503. The open-file limit is raised to the hard limit at"
            " start."),
    Setting("server", "workers", 1, Between(1, 64), "1 to 64",
            "Web processes on this host, sharing the port (1 to 64); each keeps its own copy"
            " of the served splits, and a publish by any of them is served by all within"
            " `refresh_ms`. More serve more reads; for write-heavy installs on SQLite keep 1:"
            " each worker commits its own `POST /data` groups, and they wait for the file's"
            " one write lock in SQLite's busy handler (no more writes per second, p99 up to a"
            " second; bench/README.md)."),
    Setting("server", "writer_process", True, None, "",
            "Store `POST /data`'s writes in a child process of each web process (started and"
            " stopped with it), so that its event loop and the writes' group commit do not"
            " share one GIL. false: in a thread of the web process."),
    Setting("server", "access_log", False, None, "",
            "Log a line per request (uvicorn's access log). Off by default: on the hot read"
            " path it costs more than the answer."),
    Setting("server", "recompute_wait_seconds", 5.0, Between(0, 600), "0 to 600",
            "`POST /recompute` answers the run's summary if it ends within this many seconds;"
            " otherwise `202` with `Location: /runs/{id}`, the run going on in the background."),
    Setting("server", "metrics", True, None, "",
            "Serve Prometheus metrics at `GET /metrics` and count requests (see"
            " [Operating](#operating))."),
    Setting("server", "log_format", "text", OneOf(("text", "json")), "text or json",
            "Log lines as plain `text`, or `json`: one object per line with time, level,"
            " logger, message, request id and fields such as the run id."),
    # The policy keys: defaults that each experiment can override (PUT .../settings).
    # Per experiment the floors must also leave room: arms x min_allocation < 1.
    Setting("policy", "min_allocation", 0.0, Between(0, 0.5, high_open=True),
            "at least 0 and below 0.5",
            "Default floor per arm (fraction of traffic, below 0.5 here and in"
            " `PUT /experiments/{id}/settings`); see [Allocation policy](#allocation-policy)."),
    Setting("policy", "min_impressions", 0, Between(0, 10**12), "0 to 1000000000000",
            "Default impressions every active arm needs before the split leaves equal."),
    Setting("policy", "exploration_days", 0, DAYS, "0 to 3650",
            "Default number of days of equal split at the start of an experiment."),
    Setting("policy", "winner_probability", 0.95, Between(0.5, 1), "0.5 to 1",
            "P(best) a winner needs (0.5 to 1)."),
    Setting("policy", "value_remaining", 0.01, FRACTION, "above 0 and at most 1",
            "A winner also needs the 95th percentile of the relative gain still possible"
            " below this."),
    Setting("policy", "auto_rollout", False, None, "",
            "Give a declared winner all traffic (minus the other arms' floors)."),
    Setting("policy", "window_days", 0, DAYS, "0 (off) to 3650",
            "Count only the last N days (0: every day). Not with `discount`."),
    Setting("policy", "discount", 1.0, FRACTION, "above 0 and at most 1 (1 is off)",
            "Weight each day's counts by discount^age in days (1.0: off). Not with"
            " `window_days`."),
    Setting("policy", "method", "monte_carlo", OneOf(("monte_carlo", "exact")),
            "monte_carlo or exact",
            "P(best) by `monte_carlo` (`sampling.samples` draws) or `exact` (numerical"
            " integration)."),
    Setting("policy", "assignment", "sticky", OneOf(("sticky", "daily")), "sticky or daily",
            "How units map to arms (see [Router guide](#router-guide)): `sticky` keeps every"
            " unit's bucket and moves only as many units as the change of split needs;"
            " `daily` re-randomises every unit each day."),
    Setting("auth", "require_key_for_reads", False, None, "",
            "With API keys set, reads need a key too (except `/healthz` and the API docs)."
            " Needs `BANDIT_AUTH_API_KEYS`."),
)
# fmt: on
POLICY = tuple(s for s in SETTINGS if s.section == "policy")
