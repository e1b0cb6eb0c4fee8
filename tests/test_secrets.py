"""API keys: parsed from the environment, compared by digest, never shown."""

import pytest

from core.secrets import ApiKeys, load_api_keys, parse_api_keys
from core.settings import SettingsError


def test_keys_are_comma_separated_and_trimmed():
    keys = parse_api_keys(" alpha-1 , beta_2,, ")
    assert len(keys) == 2
    assert keys.matches(b"alpha-1")
    assert keys.matches(b"beta_2")


def test_a_wrong_key_or_a_prefix_does_not_match():
    keys = parse_api_keys("alpha-1")
    assert not keys.matches(b"alpha-")
    assert not keys.matches(b"alpha-12")
    assert not keys.matches(b"")


def test_no_variable_means_no_keys():
    assert not load_api_keys({})


@pytest.mark.parametrize("raw", ["", " ", ",", " , ,"])
def test_a_variable_set_without_a_key_is_refused_not_taken_as_auth_off(raw):
    with pytest.raises(SettingsError, match="set but holds no key"):
        load_api_keys({"BANDIT_AUTH_API_KEYS": raw})


def test_keys_are_never_in_repr():
    keys = ApiKeys(["s3cret-value"])
    assert "s3cret" not in repr(keys)
    assert "s3cret" not in str(vars(keys))


@pytest.mark.parametrize("raw", ["has space", 'quote"d', "semi;colon", "ünïcode"])
def test_a_key_no_client_could_send_fails_without_echoing_it(raw):
    with pytest.raises(SettingsError, match="key 2") as error:
        parse_api_keys(f"good,{raw}")
    assert raw not in str(error.value)


def test_a_key_given_as_name_equals_key_is_known_by_that_name():
    keys = parse_api_keys("ci=alpha-1, ops.team=beta_2")
    assert (keys.name_of(b"alpha-1"), keys.name_of(b"beta_2")) == ("ci", "ops.team")
    assert not keys.matches(b"ci=alpha-1")


def test_a_plain_key_is_named_by_its_position_and_keeps_its_padding():
    keys = parse_api_keys("alpha-1,ci=beta_2,YWJj==")
    assert keys.name_of(b"alpha-1") == "key-1"
    assert keys.name_of(b"YWJj==") == "key-3"
    assert keys.name_of(b"wrong") is None


def test_two_keys_with_one_name_are_refused_without_echoing_them():
    with pytest.raises(SettingsError, match="same name") as refused:
        parse_api_keys("ci=alpha-1,ci=beta_2")
    assert "alpha-1" not in str(refused.value) and "beta_2" not in str(refused.value)
