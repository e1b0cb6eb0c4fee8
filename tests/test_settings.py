"""Settings: config.toml, environment overrides, and errors that name the key."""

import math
import re
import tomllib

import pytest
from peewee import BigIntegerField, BooleanField, CharField, DoubleField

from core.schema import Allocation, ExperimentPolicy
from core.settings import DEFAULT_CONFIG, POLICY, SETTINGS, SettingsError, load_settings
from core.settings_table import Between, OneOf
from tests.helpers import CONTRACT_POST, ROOT

OVERRIDES = {
    str: "other",
    int: "7",
    float: "2.5",
    bool: "false",
}
GOOD_OVERRIDES = {
    ("database", "synchronous"): "NORMAL",
    ("database", "url"): "sqlite:///other.db",
    ("schedule", "time"): "06:30",
    ("schedule", "timezone"): "Europe/Berlin",
    ("sampling", "samples"): "5000",
    ("server", "port"): "9000",
    ("server", "refresh_ms"): "100",
    ("server", "access_log"): "true",
    ("policy", "assignment"): "daily",
    ("server", "log_format"): "json",
    ("policy", "min_allocation"): "0.05",
    ("policy", "winner_probability"): "0.99",
    ("policy", "value_remaining"): "0.05",
    ("policy", "auto_rollout"): "true",
    ("policy", "discount"): "0.9",
    ("policy", "method"): "exact",
    ("server", "max_body_bytes"): "2048",
    ("auth", "require_key_for_reads"): "true",
}


def config_lines_by_key() -> dict[tuple[str, str], tuple[str, str]]:
    """(section, key) -> (the key's line, the line above it) in the committed config.toml."""
    found, section, above = {}, None, ""
    for line in DEFAULT_CONFIG.read_text().splitlines():
        if match := re.fullmatch(r"\[(\w+)\]", line):
            section = match.group(1)
        elif match := re.match(r"(\w+) = ", line):
            found[section, match.group(1)] = (line, above)
        above = line
    return found


def test_committed_config_holds_exactly_the_tables_keys_with_their_defaults():
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    in_file = {(section, key) for section, values in data.items() for key in values}
    assert in_file == {(s.section, s.key) for s in SETTINGS}
    for s in SETTINGS:
        value = data[s.section][s.key]
        assert (value, type(value)) == (s.default, s.kind), f"{s.section}.{s.key}"


def test_every_key_in_config_toml_has_a_comment_above_it():
    for (section, key), (line, above) in config_lines_by_key().items():
        assert above.startswith("# "), f"{section}.{key} has no comment above {line!r}"


def test_defaults_load_without_environment():
    settings = load_settings({})
    assert settings.sampling.samples == 10_000
    assert settings.server.host == "127.0.0.1"
    assert settings.database.synchronous == "FULL"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.env_name)
def test_each_key_can_be_overridden_from_the_environment(setting):
    raw = GOOD_OVERRIDES.get((setting.section, setting.key), OVERRIDES[setting.kind])
    settings = load_settings({setting.env_name: raw})
    value = getattr(getattr(settings, setting.section), setting.key)
    assert value != setting.default
    assert str(value).lower() == raw.lower() or value == setting.kind(raw)


def test_unknown_environment_setting_fails_naming_it():
    with pytest.raises(SettingsError, match="BANDIT_SAMPLING_SAMPLEZ"):
        load_settings({"BANDIT_SAMPLING_SAMPLEZ": "5"})


@pytest.mark.parametrize(
    "name,raw,fragment",
    [
        ("BANDIT_SAMPLING_SAMPLES", "many", "BANDIT_SAMPLING_SAMPLES"),
        ("BANDIT_SAMPLING_SAMPLES", "5", "sampling.samples"),
        ("BANDIT_SCHEDULE_TIME", "25:00", "schedule.time"),
        ("BANDIT_SCHEDULE_TIMEZONE", "Mars/Olympus", "schedule.timezone"),
        ("BANDIT_SCHEDULE_CATCH_UP", "maybe", "BANDIT_SCHEDULE_CATCH_UP"),
        ("BANDIT_SAMPLING_PRIOR_ALPHA", "0", "sampling.prior_alpha"),
        ("BANDIT_DATABASE_SYNCHRONOUS", "SOMETIMES", "database.synchronous"),
    ],
)
def test_bad_values_fail_naming_the_key(name, raw, fragment):
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        load_settings({name: raw})


def test_config_file_from_bandit_config(tmp_path):
    path = tmp_path / "custom.toml"
    path.write_text("[sampling]\nsamples = 2000\n[server]\nport = 8123\n")
    settings = load_settings({"BANDIT_CONFIG": str(path)})
    assert (settings.sampling.samples, settings.server.port) == (2000, 8123)
    assert settings.schedule.time == "23:50"


def test_environment_wins_over_the_file(tmp_path):
    path = tmp_path / "custom.toml"
    path.write_text("[server]\nport = 8123\n")
    settings = load_settings({"BANDIT_CONFIG": str(path), "BANDIT_SERVER_PORT": "8124"})
    assert settings.server.port == 8124


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[sampling]\nsampels = 5\n", "sampling.sampels"),
        ("[smapling]\n", "[smapling]"),
        ('[server]\nport = "80"\n', "server.port"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_config_file_fails_naming_the_problem(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=re.escape(fragment)):
        load_settings({"BANDIT_CONFIG": str(path)})


def test_missing_config_file_fails_naming_the_path(tmp_path):
    with pytest.raises(SettingsError, match=r"nope\.toml"):
        load_settings({"BANDIT_CONFIG": str(tmp_path / "nope.toml")})


def readme_configuration_rows() -> dict[str, tuple[str, str, str]]:
    """setting -> (default, environment variable, meaning) from the README's table."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    row = re.compile(r"^\| `(\w+\.\w+)` \| `([^`]*)` \| `(\w+)` \| (.*) \|$", re.MULTILINE)
    return {name: tuple(rest) for name, *rest in row.findall(section)}


def shown_in_toml(default) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    return f'"{default}"' if isinstance(default, str) else str(default)


def test_readme_configuration_table_documents_every_key_with_its_default():
    rows = readme_configuration_rows()
    assert set(rows) == {f"{s.section}.{s.key}" for s in SETTINGS}
    for s in SETTINGS:
        name = f"{s.section}.{s.key}"
        assert rows[name] == (shown_in_toml(s.default), s.env_name, s.help), name


def test_command_line_entry_points_exit_2_naming_the_bad_key(monkeypatch, capsys):
    from scheduler.__main__ import main

    monkeypatch.setenv("BANDIT_SERVER_PORT", "eighty")
    with pytest.raises(SystemExit) as stopped:
        main(["run-once"])
    assert stopped.value.code == 2
    assert "BANDIT_SERVER_PORT" in capsys.readouterr().err


def test_window_and_discount_together_fail_at_start():
    with pytest.raises(SettingsError, match="window_days and discount"):
        load_settings({"BANDIT_POLICY_WINDOW_DAYS": "7", "BANDIT_POLICY_DISCOUNT": "0.9"})


@pytest.mark.parametrize(
    "name,raw", [("BANDIT_POLICY_MIN_ALLOCATION", "0.5"), ("BANDIT_POLICY_METHOD", "guess")]
)
def test_bad_policy_defaults_fail_naming_the_key(name, raw):
    key = name.removeprefix("BANDIT_POLICY_").lower()
    with pytest.raises(SettingsError, match=f"policy.{key}"):
        load_settings({name: raw})


def test_auth_settings_come_from_the_environment_but_keys_are_not_settings():
    settings = load_settings(
        {"BANDIT_AUTH_REQUIRE_KEY_FOR_READS": "true", "BANDIT_AUTH_API_KEYS": "k1,k2"}
    )
    assert settings.auth.require_key_for_reads is True
    assert "k1" not in repr(settings)


def test_api_keys_in_a_config_file_are_refused(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[auth]\napi_keys = "hunter2"\n')
    with pytest.raises(SettingsError, match="BANDIT_AUTH_API_KEYS") as error:
        load_settings({"BANDIT_CONFIG": str(path)})
    assert "hunter2" not in str(error.value)


def test_a_misspelt_auth_variable_fails_naming_it():
    with pytest.raises(SettingsError, match="BANDIT_AUTH_API_KEY"):
        load_settings({"BANDIT_AUTH_API_KEY": "k1"})


def test_test_hook_variables_are_not_settings():
    assert load_settings({"BANDIT_TEST_PAUSE_PUBLISH": "1"}).sampling.samples == 10_000


def post_one_arm_experiment(client) -> str:
    """An experiment with one arm: the floor check (arms x min_allocation < 1) never binds."""
    one_arm = {**CONTRACT_POST, "variants": CONTRACT_POST["variants"][:1]}
    assert client.post("/data", json=one_arm).status_code == 200
    return f"/experiments/{one_arm['experiment_id']}/settings"


def config_refusal(setting, value) -> str:
    """What load_settings says after the key's name when the environment sets value."""
    with pytest.raises(SettingsError) as refused:
        load_settings({setting.env_name: str(value)})
    prefix = f"{setting.section}.{setting.key}: "
    assert str(refused.value).startswith(prefix)
    return str(refused.value).removeprefix(prefix)


def test_put_min_allocation_outside_the_config_range_is_refused_in_the_config_words(client):
    url = post_one_arm_experiment(client)
    expected = config_refusal(next(s for s in POLICY if s.key == "min_allocation"), 0.7)
    response = client.put(url, json={"min_allocation": 0.7})
    assert response.status_code == 422
    assert f"min_allocation: {expected}" in response.json()["message"]
    assert "below 0.5" in expected


def step(bound, kind, direction: int):
    """The next value of the key's type past bound, in direction (+1 up, -1 down)."""
    return bound + direction if kind is int else math.nextafter(bound, direction * math.inf)


def edge_cases(setting) -> list[tuple[object, bool]]:
    """(value, accepted) at each end of a policy key's range: a closed end is accepted and the
    next value past it refused; an open end is refused and the next value inside accepted."""
    check, kind = setting.check, setting.kind
    if isinstance(check, OneOf):
        return [(choice, True) for choice in check.choices] + [("guess", False)]
    if not isinstance(check, Between):
        return []
    cases = []
    for bound, is_open, outward in [
        (check.low, check.low_open, -1),
        (check.high, check.high_open, 1),
    ]:
        bound = kind(bound)
        direction = -outward if is_open else outward
        cases += [(bound, not is_open), (step(bound, kind, direction), is_open)]
    return cases


POLICY_EDGES = [(s, value, ok) for s in POLICY for value, ok in edge_cases(s)]


@pytest.mark.parametrize(
    "setting,value,accepted", POLICY_EDGES, ids=[f"{s.key}={v!r}" for s, v, _ in POLICY_EDGES]
)
def test_config_and_put_accept_and_refuse_each_policy_value_alike(client, setting, value, accepted):
    url = post_one_arm_experiment(client)
    response = client.put(url, json={setting.key: value})
    if accepted:
        assert getattr(load_settings({setting.env_name: str(value)}).policy, setting.key) == value
        assert response.status_code == 200
        assert response.json()["overrides"] == {setting.key: value}
    else:
        expected = config_refusal(setting, value)
        assert response.status_code == 422
        assert response.json()["message"] == f"{setting.key}: {expected}"


def test_every_policy_key_but_the_switch_has_a_range_both_paths_check():
    assert [s.key for s in POLICY if not edge_cases(s)] == ["auto_rollout"]


def test_policy_columns_are_nullable_and_hold_what_the_api_accepts_on_any_engine():
    wide = {int: BigIntegerField, float: DoubleField, bool: BooleanField, str: CharField}
    for s in POLICY:
        column = ExperimentPolicy._meta.fields[s.key]
        assert type(column) is wide[s.kind] and column.null, s.key
    assert type(Allocation.percentage) is DoubleField
    assert type(Allocation.probability) is DoubleField


def test_min_impressions_of_a_trillion_round_trips_through_put_and_get(client):
    url = post_one_arm_experiment(client)
    assert client.put(url, json={"min_impressions": 10**12}).status_code == 200
    body = client.get(url).json()
    assert body["overrides"]["min_impressions"] == body["settings"]["min_impressions"] == 10**12
