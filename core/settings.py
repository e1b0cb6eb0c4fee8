"""Settings: code defaults, then config.toml (or BANDIT_CONFIG), then BANDIT_<SECTION>_<KEY>.

Every key has a default here and the same default, with a comment, in config.toml; a test
keeps the two and the README's table in step. Unknown keys and bad values fail at start
with a message that names the key.
"""

import dataclasses
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"
API_KEYS_VARIABLE = "BANDIT_AUTH_API_KEYS"


class SettingsError(ValueError):
    """A setting is unknown or has a bad value; the message names it."""


@dataclass(frozen=True)
class DatabaseSettings:
    path: str = "bandit.db"
    busy_timeout_ms: int = 5000
    synchronous: str = "FULL"


@dataclass(frozen=True)
class ScheduleSettings:
    time: str = "23:50"
    timezone: str = "UTC"
    misfire_grace_seconds: int = 3600
    catch_up: bool = True
    lease_seconds: int = 60


@dataclass(frozen=True)
class SamplingSettings:
    samples: int = 10_000
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    workers: int = 1


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    refresh_ms: int = 250
    max_body_bytes: int = 1_048_576


@dataclass(frozen=True)
class AuthSettings:
    require_key_for_reads: bool = False


@dataclass(frozen=True)
class PolicySettings:
    """Allocation policy defaults; each experiment can override them (PUT .../settings).

    The defaults are plain Thompson Sampling on cumulative counts.
    """

    min_allocation: float = 0.0
    min_impressions: int = 0
    exploration_days: int = 0
    winner_probability: float = 0.95
    value_remaining: float = 0.01
    auto_rollout: bool = False
    window_days: int = 0
    discount: float = 1.0
    method: str = "monte_carlo"


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    policy: PolicySettings = field(default_factory=PolicySettings)
    auth: AuthSettings = field(default_factory=AuthSettings)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.timezone)

    @property
    def run_hour_minute(self) -> tuple[int, int]:
        hour, minute = self.schedule.time.split(":")
        return int(hour), int(minute)


def _valid_timezone(value: str) -> bool:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# Shared with PUT /experiments/{id}/settings, which checks the same ranges.
POLICY_RULES = {
    # Per experiment the floors must also leave room: arms x min_allocation < 1.
    "min_allocation": (lambda v: 0 <= v < 0.5, "at least 0 and below 0.5"),
    "min_impressions": (lambda v: 0 <= v <= 10**12, "0 to 1000000000000"),
    "exploration_days": (lambda v: 0 <= v <= 3650, "0 to 3650"),
    "winner_probability": (lambda v: 0.5 <= v <= 1, "0.5 to 1"),
    "value_remaining": (lambda v: 0 < v <= 1, "above 0 and at most 1"),
    "window_days": (lambda v: 0 <= v <= 3650, "0 (off) to 3650"),
    "discount": (lambda v: 0 < v <= 1, "above 0 and at most 1 (1 is off)"),
    "method": (lambda v: v in {"monte_carlo", "exact"}, "monte_carlo or exact"),
}


def policy_conflict(policy) -> str | None:
    """Why a combination of policy values is invalid, or None."""
    if policy.window_days > 0 and policy.discount < 1:
        return "window_days and discount cannot both be on: set window_days 0 or discount 1"
    return None


# Extra rules beyond the type; each maps (section, key) to (check, what a good value is).
RULES = {
    ("database", "path"): (lambda v: v.strip() != "", "a non-empty file path"),
    ("database", "busy_timeout_ms"): (lambda v: 0 <= v <= 600_000, "0 to 600000"),
    ("database", "synchronous"): (
        lambda v: v in {"OFF", "NORMAL", "FULL", "EXTRA"},
        "one of OFF, NORMAL, FULL, EXTRA",
    ),
    ("schedule", "time"): (
        lambda v: re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v) is not None,
        "HH:MM on a 24-hour clock",
    ),
    ("schedule", "timezone"): (_valid_timezone, "an IANA time zone such as Europe/Berlin"),
    ("schedule", "misfire_grace_seconds"): (lambda v: 1 <= v <= 86_400, "1 to 86400"),
    ("schedule", "lease_seconds"): (lambda v: 2 <= v <= 3_600, "2 to 3600"),
    ("sampling", "samples"): (lambda v: 100 <= v <= 1_000_000, "100 to 1000000"),
    ("sampling", "prior_alpha"): (lambda v: 0 < v <= 1e6, "greater than 0"),
    ("sampling", "prior_beta"): (lambda v: 0 < v <= 1e6, "greater than 0"),
    ("sampling", "workers"): (lambda v: 1 <= v <= 64, "1 to 64"),
    ("server", "port"): (lambda v: 1 <= v <= 65_535, "1 to 65535"),
    ("server", "refresh_ms"): (lambda v: 10 <= v <= 1_000, "10 to 1000"),
    ("server", "max_body_bytes"): (lambda v: 1_024 <= v <= 64 * 2**20, "1024 to 67108864"),
    **{("policy", key): rule for key, rule in POLICY_RULES.items()},
}


def section_types() -> dict[str, type]:
    return {f.name: f.type for f in dataclasses.fields(Settings)}


def all_keys() -> list[tuple[str, str, object]]:
    """(section, key, default) for every setting, in declaration order."""
    return [
        (section, f.name, f.default)
        for section, cls in section_types().items()
        for f in dataclasses.fields(cls)
    ]


def parse_env_value(name: str, raw: str, kind: type):
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in {"true", "1", "yes", "on"}:
            return True
        if lowered in {"false", "0", "no", "off"}:
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{name}: expected {kind.__name__}, got {raw!r}") from None


def check_value(section: str, key: str, value, kind: type):
    name = f"{section}.{key}"
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise SettingsError(f"{name}: expected {kind.__name__}, got {value!r}")
    check, expected = RULES.get((section, key), (lambda v: True, ""))
    if not check(value):
        raise SettingsError(f"{name}: expected {expected}, got {value!r}")
    return value


def read_file(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"config file {path} is not valid TOML: {e}") from None


def check_known(data: dict, origin: str) -> None:
    sections = section_types()
    for section, values in data.items():
        if section not in sections or not isinstance(values, dict):
            raise SettingsError(f"{origin}: unknown section [{section}]")
        known = {f.name for f in dataclasses.fields(sections[section])}
        for key in values:
            if (section, key) == ("auth", "api_keys"):
                raise SettingsError(f"{origin}: auth.api_keys {SECRET_NOT_IN_FILE}")
            if key not in known:
                raise SettingsError(f"{origin}: unknown key {section}.{key}")


SECRET_NOT_IN_FILE = "is a secret: it is read only from BANDIT_AUTH_API_KEYS, never from a file"


def is_reserved(name: str) -> bool:
    """Environment names that are not settings: the config path, secrets, test hooks."""
    return name in {"BANDIT_CONFIG", API_KEYS_VARIABLE} or name.startswith("BANDIT_TEST_")


def env_overrides(env) -> dict:
    overrides: dict[str, dict] = {}
    known = {f"BANDIT_{s}_{k}".upper(): (s, k) for s, k, _ in all_keys()}
    for name, raw in env.items():
        if not name.startswith("BANDIT_") or is_reserved(name):
            continue
        if name not in known:
            raise SettingsError(f"unknown setting in environment: {name}")
        section, key = known[name]
        kind = _field_type(section, key)
        overrides.setdefault(section, {})[key] = parse_env_value(name, raw, kind)
    return overrides


def _field_type(section: str, key: str) -> type:
    cls = section_types()[section]
    return next(f.type for f in dataclasses.fields(cls) if f.name == key)


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    path = Path(env.get("BANDIT_CONFIG", DEFAULT_CONFIG))
    data = read_file(path)
    check_known(data, str(path))
    for section, values in env_overrides(env).items():
        data.setdefault(section, {}).update(values)
    built = {}
    for section, cls in section_types().items():
        values = data.get(section, {})
        checked = {
            k: check_value(section, k, v, _field_type(section, k)) for k, v in values.items()
        }
        built[section] = cls(**checked)
    conflict = policy_conflict(built["policy"])
    if conflict:
        raise SettingsError(f"policy: {conflict}")
    return Settings(**built)


def load_settings_or_exit() -> Settings:
    """For command-line entry points: a bad setting stops the process with exit status 2."""
    try:
        return load_settings()
    except SettingsError as e:
        print(f"bad configuration: {e}", file=sys.stderr)
        raise SystemExit(2) from None
