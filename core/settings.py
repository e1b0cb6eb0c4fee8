"""Settings: code defaults, then config.toml (or BANDIT_CONFIG), then BANDIT_<SECTION>_<KEY>.

Each key is one row of core/settings_table.py; the section dataclasses, the checks and the
environment names here are built from it. Unknown keys and bad values fail at start with a
message that names the key.
"""

import dataclasses
import os
import sys
import tomllib
from dataclasses import dataclass, field, make_dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from core.settings_table import POLICY as POLICY  # re-exported with the table
from core.settings_table import SETTINGS, SQLITE_PREFIX, Setting

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.toml"
API_KEYS_VARIABLE = "BANDIT_AUTH_API_KEYS"


class SettingsError(ValueError):
    """A setting is unknown or has a bad value; the message names it."""


BY_NAME = {(s.section, s.key): s for s in SETTINGS}


def section_class(section: str) -> type:
    """The frozen dataclass of one section, its fields the section's rows in order."""
    fields = [(s.key, s.kind, field(default=s.default)) for s in SETTINGS if s.section == section]
    name = f"{section.title()}Settings"
    # __module__ set so that pickle (the job's worker processes) finds the class by name.
    return make_dataclass(name, fields, frozen=True, namespace={"__module__": __name__})


DatabaseSettings = section_class("database")
ScheduleSettings = section_class("schedule")
SamplingSettings = section_class("sampling")
ServerSettings = section_class("server")
PolicySettings = section_class("policy")
AuthSettings = section_class("auth")


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


SECTIONS = {f.name: f.type for f in dataclasses.fields(Settings)}


def policy_conflict(policy) -> str | None:
    """Why a combination of policy values is invalid, or None."""
    if policy.window_days > 0 and policy.discount < 1:
        return "window_days and discount cannot both be on: set window_days 0 or discount 1"
    return None


def shifted_day(hour: int, minute: int, tz: ZoneInfo, start: date) -> date | None:
    """The first day within two years from `start` on which HH:MM in tz does not exist
    (a daylight-saving gap) or happens twice (an overlap), or None."""
    for offset in range(731):
        day = start + timedelta(days=offset)
        wall = datetime.combine(day, time(hour, minute), tzinfo=tz)
        twice = wall.utcoffset() != wall.replace(fold=1).utcoffset()
        if twice or wall.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall.replace(
            tzinfo=None
        ):
            return day
    return None


def schedule_conflict(schedule, today: date) -> str | None:
    """A nightly time that a daylight-saving change skips or repeats would fire late, twice
    or never on that night: refused at start rather than handled by surprise."""
    hour, minute = (int(part) for part in schedule.time.split(":"))
    day = shifted_day(hour, minute, ZoneInfo(schedule.timezone), today)
    if day is None:
        return None
    return (
        f"time {schedule.time} is skipped or repeated by a daylight-saving change in"
        f" {schedule.timezone} (on {day}): choose a time outside the change"
    )


def parse_env_value(setting: Setting, raw: str):
    name, kind = setting.env_name, setting.kind
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


def check_value(setting: Setting, value):
    name, kind = f"{setting.section}.{setting.key}", setting.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        raise SettingsError(f"{name}: expected {kind.__name__}, got {value!r}")
    refusal = setting.refusal(value)
    if refusal:
        raise SettingsError(f"{name}: {refusal}")
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
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise SettingsError(f"{origin}: unknown section [{section}]")
        for key in values:
            if (section, key) == ("auth", "api_keys"):
                raise SettingsError(f"{origin}: auth.api_keys {SECRET_NOT_IN_FILE}")
            if (section, key) == ("database", "url") and has_password(str(values[key])):
                raise SettingsError(f"{origin}: database.url {PASSWORD_NOT_IN_FILE}")
            if (section, key) not in BY_NAME:
                raise SettingsError(f"{origin}: unknown key {section}.{key}")


PASSWORD_NOT_IN_FILE = (
    "holds a password: a password is read only from BANDIT_DATABASE_URL (or PGPASSWORD,"
    " PGPASSFILE), never from a file"
)
SECRET_NOT_IN_FILE = "is a secret: it is read only from BANDIT_AUTH_API_KEYS, never from a file"


def is_reserved(name: str) -> bool:
    """Environment names that are not settings: the config path, secrets, test hooks."""
    return name in {"BANDIT_CONFIG", API_KEYS_VARIABLE} or name.startswith("BANDIT_TEST_")


def env_overrides(env) -> dict:
    overrides: dict[str, dict] = {}
    known = {s.env_name: s for s in SETTINGS}
    for name, raw in env.items():
        if not name.startswith("BANDIT_") or is_reserved(name):
            continue
        if name not in known:
            raise SettingsError(f"unknown setting in environment: {name}")
        setting = known[name]
        overrides.setdefault(setting.section, {})[setting.key] = parse_env_value(setting, raw)
    return overrides


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    path = Path(env.get("BANDIT_CONFIG", DEFAULT_CONFIG))
    data = read_file(path)
    check_known(data, str(path))
    overrides = env_overrides(env)
    where = database_source(data.get("database", {}), overrides.get("database", {}))
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    built = {
        section: cls(**{k: check_value(BY_NAME[section, k], v) for k, v in values.items()})
        for section, cls in SECTIONS.items()
        for values in [data.get(section, {})]
    }
    built["database"] = reconciled_database(built["database"], where)
    conflict = policy_conflict(built["policy"])
    if conflict:
        raise SettingsError(f"policy: {conflict}")
    conflict = schedule_conflict(built["schedule"], date.today())
    if conflict:
        raise SettingsError(f"schedule.{conflict}")
    return Settings(**built)


def database_source(in_file: dict, in_env: dict) -> set:
    """Which of url and path name the database: those the environment sets, if any (an
    environment variable overrides both keys of the file), else those the file sets."""
    from_env = {key for key in ("url", "path") if key in in_env}
    return from_env or {key for key in ("url", "path") if key in in_file}


def reconciled_database(database, given: set):
    """database.url and database.path agree: path is the SQLite file of a sqlite:/// URL.
    Either may be given alone; both must name the same file, and a PostgreSQL URL takes
    no path. A password may come only from the environment (BANDIT_DATABASE_URL)."""
    url, path = database.url, database.path
    if "url" in given and "path" in given:
        if not url.startswith(SQLITE_PREFIX):
            raise SettingsError(
                f"database.path ({path!r}) is for SQLite, but database.url is {redacted(url)!r}:"
                " remove database.path"
            )
        if url[len(SQLITE_PREFIX) :] != path:
            raise SettingsError(
                f"database.url ({url!r}) and database.path ({path!r}) name different files:"
                " set one of them"
            )
    if "url" not in given:
        url = SQLITE_PREFIX + path
    elif url.startswith(SQLITE_PREFIX):
        path = url[len(SQLITE_PREFIX) :]
    if not url.startswith(SQLITE_PREFIX) and database.synchronous != "FULL":
        raise SettingsError(
            "database.synchronous is a SQLite setting; PostgreSQL's durability is the"
            " server's (fsync, synchronous_commit): remove it with a postgresql URL"
        )
    return dataclasses.replace(database, url=url, path=path)


def redacted(url: str) -> str:
    """A database URL with its password, if any, shown as ***: for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def has_password(url: str) -> bool:
    try:
        return urlsplit(url).password is not None or "password=" in urlsplit(url).query
    except ValueError:
        return False


def load_settings_or_exit() -> Settings:
    """For command-line entry points: a bad setting stops the process with exit status 2."""
    try:
        return load_settings()
    except SettingsError as e:
        print(f"bad configuration: {e}", file=sys.stderr)
        raise SystemExit(2) from None
