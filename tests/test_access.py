"""API keys: writes need one when keys are set, reads only if configured, 401 is JSON."""

import dataclasses
import logging

import pytest
from fastapi.testclient import TestClient

from api.__main__ import check_access
from api.app import create_app
from api.middleware import AccessPolicy, authorized, bearer_token
from core.secrets import ApiKeys
from core.settings import SettingsError
from tests.helpers import CONTRACT_POST, KEY

GOOD = {"Authorization": f"Bearer {KEY}"}


def keyed_client(settings, reads=False):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=reads)
    app = create_app(dataclasses.replace(settings, auth=auth), ApiKeys([KEY, "second-key"]))
    return TestClient(app)


@pytest.fixture
def keyed(settings):
    with keyed_client(settings) as client:
        yield client


@pytest.fixture
def keyed_reads(settings):
    with keyed_client(settings, reads=True) as client:
        yield client


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic x"}],
)
def test_write_without_the_right_key_is_a_json_401_that_stores_nothing(keyed, headers):
    response = keyed.post("/data", json=CONTRACT_POST, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert keyed.get("/experiments").json() == []


def test_write_with_any_configured_key_is_accepted(keyed):
    assert keyed.post("/data", json=CONTRACT_POST, headers=GOOD).status_code == 200
    second = {"Authorization": "bearer second-key"}
    assert keyed.post("/recompute", headers=second).status_code == 200


def test_recompute_needs_a_key(keyed):
    assert keyed.post("/recompute").status_code == 401


def test_every_non_read_method_needs_a_key_even_on_routes_added_later(keyed):
    for method in ("PUT", "PATCH", "DELETE"):
        response = keyed.request(method, "/experiments/ctr_test/settings", json={})
        assert response.status_code == 401, method


def test_reads_stay_open_unless_configured(keyed):
    assert keyed.get("/experiments").status_code == 200
    assert keyed.get("/allocation", params={"experiment_id": "x"}).status_code == 404


def test_reads_need_a_key_when_configured(keyed_reads):
    assert keyed_reads.get("/experiments").status_code == 401
    assert keyed_reads.get("/allocation", params={"experiment_id": "x"}).status_code == 401
    assert keyed_reads.get("/experiments", headers=GOOD).status_code == 200


def test_health_and_docs_stay_open_when_reads_need_a_key(keyed_reads):
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert keyed_reads.get(path).status_code == 200, path
    assert keyed_reads.get("/healthz").json()["auth"] == "reads_and_writes"


def test_healthz_reports_that_keys_are_off(client):
    body = client.get("/healthz").json()
    assert body["auth"] == "off"
    assert "BANDIT_AUTH_API_KEYS" in body["warnings"][0]


def test_healthz_reports_keys_on_without_warnings(keyed):
    body = keyed.get("/healthz").json()
    assert (body["auth"], body["warnings"]) == ("writes", [])


def test_server_warns_at_start_without_keys(settings, caplog):
    with caplog.at_level(logging.WARNING, logger="bandit.api"), TestClient(create_app(settings)):
        pass
    assert "BANDIT_AUTH_API_KEYS is not set" in caplog.text


def test_keys_are_never_logged(settings, caplog):
    with caplog.at_level(logging.DEBUG), keyed_client(settings) as client:
        client.post("/data", json=CONTRACT_POST, headers=GOOD)
        client.post("/data", json=CONTRACT_POST, headers={"Authorization": "Bearer nope"})
    assert KEY not in caplog.text


def test_keys_come_from_the_environment(settings, monkeypatch):
    monkeypatch.setenv("BANDIT_AUTH_API_KEYS", KEY)
    with TestClient(create_app(settings)) as client:
        assert client.post("/data", json=CONTRACT_POST).status_code == 401
        assert client.post("/data", json=CONTRACT_POST, headers=GOOD).status_code == 200


def test_keys_required_for_reads_without_keys_fails_at_start(settings):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=True)
    with pytest.raises(SettingsError, match=r"auth\.require_key_for_reads"):
        create_app(dataclasses.replace(settings, auth=auth), ApiKeys())


def test_openapi_documents_the_key_on_writes(keyed):
    schema = keyed.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/data"]["post"]["security"] == [{"bearer": []}]
    assert "401" in schema["paths"]["/recompute"]["post"]["responses"]
    assert "security" not in schema["paths"]["/allocation"]["get"]


@pytest.mark.parametrize(
    "value,token",
    [
        (None, None),
        ("Bearer abc", b"abc"),
        ("bearer   abc ", b"abc"),
        (b"Bearer abc", b"abc"),
        ("Bearer", None),
        ("Token abc", None),
    ],
)
def test_bearer_token_parsing(value, token):
    assert bearer_token(value) == token


def test_authorized_is_a_pure_function_any_fast_path_can_call():
    keys = ApiKeys([KEY])
    assert authorized(f"Bearer {KEY}", keys)
    assert not authorized("Bearer nope", keys)
    assert not authorized(None, keys)
    assert authorized(None, ApiKeys())
    policy = AccessPolicy(keys, require_key_for_reads=True)
    assert not policy.allows("GET", "/allocation", None)
    assert policy.allows("GET", "/healthz", None)
    assert policy.allows("GET", "/allocation", f"Bearer {KEY}".encode())


def test_python_m_api_exits_2_when_reads_need_keys_that_are_not_set(settings, capsys):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=True)
    with pytest.raises(SystemExit) as stopped:
        check_access(dataclasses.replace(settings, auth=auth))
    assert stopped.value.code == 2
    assert "BANDIT_AUTH_API_KEYS" in capsys.readouterr().err
