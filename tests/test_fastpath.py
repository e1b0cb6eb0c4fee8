"""The GET /allocation fast path: the same bytes as the FastAPI route, and only when plain."""

import dataclasses

import fastapi
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.secrets import ApiKeys
from tests.helpers import CONTRACT_POST, KEY

GOOD = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def published(client):
    client.post("/data", json=CONTRACT_POST)
    client.post("/recompute")
    return client


def test_fast_path_answers_without_entering_fastapi(published, monkeypatch):
    def not_reached(*args):
        raise AssertionError("the request went through FastAPI")

    monkeypatch.setattr(fastapi.FastAPI, "__call__", not_reached)
    response = published.get("/allocation?experiment_id=ctr_test")
    assert response.status_code == 200
    assert response.json()["status"] == "computed"


def test_fast_path_and_fastapi_route_give_identical_responses(published):
    fast = published.get("/allocation?experiment_id=ctr_test")
    # A percent-encoded id is not the plain query string, so FastAPI's route answers it.
    routed = published.get("/allocation?experiment_id=ctr%5Ftest")
    assert fast.content == routed.content
    assert fast.status_code == routed.status_code == 200
    assert fast.headers == routed.headers


@pytest.mark.parametrize(
    "query",
    [
        "experiment_id=ctr_test&date=2025-12-23",
        "date=2025-12-23&experiment_id=ctr_test",
        "experiment_id=ctr_test&experiment_id=other",
    ],
)
def test_requests_with_other_parameters_go_to_fastapi(published, monkeypatch, query):
    calls = []
    original = fastapi.FastAPI.__call__

    async def counting(self, scope, receive, send):
        calls.append(scope["query_string"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(fastapi.FastAPI, "__call__", counting)
    published.get(f"/allocation?{query}")
    assert calls == [query.encode()]


def test_unknown_and_missing_ids_keep_the_api_error_shape(published):
    missing = published.get("/allocation?experiment_id=nope")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "unknown experiment 'nope'"}
    empty = published.get("/allocation?experiment_id=")
    assert empty.status_code == 404
    invalid = published.get("/allocation")
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "invalid_request"


def test_head_and_other_methods_go_to_fastapi(published):
    assert published.post("/allocation?experiment_id=ctr_test").status_code == 405


def test_when_reads_need_a_key_a_known_experiment_is_not_served_without_one(settings):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=True)
    app = create_app(dataclasses.replace(settings, auth=auth), ApiKeys([KEY]))
    with TestClient(app) as keyed:
        assert keyed.post("/data", json=CONTRACT_POST, headers=GOOD).status_code == 200
        assert keyed.get("/allocation?experiment_id=ctr_test").status_code == 401
        assert keyed.get("/allocation?experiment_id=ctr_test", headers=GOOD).status_code == 200


def test_with_read_keys_the_fast_path_serves_requests_that_carry_a_good_key(settings, monkeypatch):
    auth = dataclasses.replace(settings.auth, require_key_for_reads=True)
    app = create_app(dataclasses.replace(settings, auth=auth), ApiKeys([KEY]))
    with TestClient(app) as keyed:
        keyed.post("/data", json=CONTRACT_POST, headers=GOOD)

        def not_reached(*args):
            raise AssertionError("the request went through FastAPI")

        monkeypatch.setattr(fastapi.FastAPI, "__call__", not_reached)
        assert keyed.get("/allocation?experiment_id=ctr_test", headers=GOOD).status_code == 200
        monkeypatch.undo()
        wrong = {"Authorization": "Bearer wrong-key-0000000000000000"}
        assert keyed.get("/allocation?experiment_id=ctr_test", headers=wrong).status_code == 401


def test_app_state_is_read_without_a_failed_lookup(monkeypatch):
    """app.state's values are attributes of their own (PlainState): Starlette's
    __getattr__, reached only after a failed lookup, is never needed, whichever way a
    value was set; deleting one removes it both ways."""
    from starlette.datastructures import State

    from api.fastpath import PlainState

    state = PlainState()
    state.settings, state["cache"] = "settings", "cache"
    monkeypatch.setattr(State, "__getattr__", lambda self, key: pytest.fail(f"looked up {key}"))
    assert (state.settings, state.cache, state["settings"], len(state)) == (
        "settings",
        "cache",
        "settings",
        2,
    )
    del state.settings
    del state["cache"]
    monkeypatch.undo()
    assert len(state) == 0
    assert not hasattr(state, "settings") and not hasattr(state, "cache")


def test_the_database_proxy_reaches_the_engine_without_a_failed_lookup(monkeypatch):
    from core.db import Database, database

    monkeypatch.setattr(Database, "__getattr__", lambda self, key: pytest.fail(f"looked up {key}"))
    assert database.is_closed() in (True, False)
    assert database.local is database.obj.local
    assert isinstance(database, Database) and type(database) is Database
