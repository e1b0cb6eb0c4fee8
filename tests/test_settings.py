"""Settings: config.toml, environment overrides, and errors that name the key."""

import re
import tomllib

import pytest

from core.settings import DEFAULT_CONFIG, SettingsError, all_keys, load_settings
from tests.helpers import ROOT

OVERRIDES = {
    str: "other",
    int: "7",
    float: "2.5",
    bool: "false",
}
GOOD_OVERRIDES = {
    ("database", "synchronous"): "NORMAL",
    ("schedule", "time"): "06:30",
    ("schedule", "timezone"): "Europe/Berlin",
    ("sampling", "samples"): "5000",
    ("server", "port"): "9000",
    ("server", "refresh_ms"): "100",
    ("policy", "min_allocation"): "0.05",
    ("policy", "winner_probability"): "0.99",
    ("policy", "value_remaining"): "0.05",
    ("policy", "auto_rollout"): "true",
    ("policy", "discount"): "0.9",
    ("policy", "method"): "exact",
    ("server", "max_body_bytes"): "2048",
    ("auth", "require_key_for_reads"): "true",
}


def test_committed_config_holds_every_key_with_the_code_default():
    data = tomllib.loads(DEFAULT_CONFIG.read_text())
    for section, key, default in all_keys():
        assert data[section][key] == default, f"{section}.{key}"


def test_defaults_load_without_environment():
    settings = load_settings({})
    assert settings.sampling.samples == 10_000
    assert settings.server.host == "127.0.0.1"
    assert settings.database.synchronous == "FULL"


@pytest.mark.parametrize("section,key,default", all_keys(), ids=lambda v: str(v))
def test_each_key_can_be_overridden_from_the_environment(section, key, default):
    raw = GOOD_OVERRIDES.get((section, key), OVERRIDES[type(default)])
    settings = load_settings({f"BANDIT_{section}_{key}".upper(): raw})
    value = getattr(getattr(settings, section), key)
    assert value != default
    assert str(value).lower() == raw.lower() or value == type(default)(raw)


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


def test_readme_configuration_table_documents_every_key_with_its_default():
    readme = (ROOT / "README.md").read_text()
    for section, key, default in all_keys():
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        row = re.search(rf"^\| `{section}\.{key}` \| `([^`]*)` \|", readme, re.MULTILINE)
        assert row, f"{section}.{key} is missing from the README's configuration table"
        assert row.group(1) in (shown, f'"{shown}"'), f"{section}.{key} default"
        assert f"BANDIT_{section}_{key}".upper() in readme


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
