"""Fuzzing: schemathesis sends generated requests from the app's own OpenAPI schema.

A bounded number of examples per operation (`FUZZ_EXAMPLES`): no 5xx, and every response
matches the schema (status code documented, body valid, content type right). The app is
built once to read its schema; each operation's test points it at a fresh database.
"""

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from api.app import create_app
from api.cache import AllocationCache
from core.secrets import ApiKeys
from core.settings import load_settings
from tests.helpers import CONTRACT_POST

KEY = "fuzz-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
# CI runs 30 per operation; FUZZ_EXAMPLES=1000 scripts/test tests/test_fuzz.py searches deeper.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


def schema_loading_settings():
    """Loading the schema starts the app once; give it a throwaway database, not ./bandit.db."""
    base = load_settings({})
    folder = tempfile.mkdtemp(prefix="bandit-fuzz-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "schema.db"
    server = dataclasses.replace(base.server, writer_process=False)  # as the settings fixture
    database = dataclasses.replace(base.database, path=str(path))
    return dataclasses.replace(base, database=database, server=server)


APP = create_app(schema_loading_settings(), ApiKeys([KEY]))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(autouse=True)
def fresh_database(settings):
    """Point the app at this test's temporary database, with one computed experiment."""
    APP.state.settings = settings
    APP.state.cache = AllocationCache()
    with TestClient(APP) as client:
        client.post("/data", json=CONTRACT_POST, headers=AUTH)
        client.post("/recompute", headers=AUTH)
        yield


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers_and_never_a_5xx(case):
    # JSON Schema cannot say "clicks <= impressions", "each variant_id once" or "a date
    # no later than tomorrow", so schema-valid bodies can rightly get 422: skip that check.
    case.call_and_validate(headers=AUTH, excluded_checks=[positive_data_acceptance])
