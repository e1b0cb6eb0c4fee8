"""Limits on input: body size (413, declared or streamed) and ids outside the safe set."""

import json

import pytest

from tests.helpers import CONTRACT_POST, body, row_count, variant

MIB = 1024 * 1024


def padded_post(size: int) -> bytes:
    """A valid POST /data body padded with whitespace to exactly size bytes."""
    raw = json.dumps(CONTRACT_POST).encode()
    return raw + b" " * (size - len(raw))


def test_body_of_exactly_the_limit_is_accepted(client):
    response = client.post(
        "/data", content=padded_post(MIB), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200


def test_body_over_the_limit_is_a_json_413_that_stores_nothing(client):
    response = client.post(
        "/data", content=padded_post(MIB + 1), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"
    assert row_count() == (0, 0, 0)


def test_chunked_body_over_the_limit_is_a_413(client):
    def chunks():
        for _ in range(20):
            yield b" " * (64 * 1024)
        yield json.dumps(CONTRACT_POST).encode()

    response = client.post("/data", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert row_count() == (0, 0, 0)


def test_chunked_body_within_the_limit_is_stored(client):
    def chunks():
        yield b" " * 1000
        yield json.dumps(CONTRACT_POST).encode()

    response = client.post("/data", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 200


def test_recompute_body_over_the_limit_is_a_413(client):
    response = client.post(
        "/recompute", content=b" " * (MIB + 10), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


UNSAFE_IDS = {
    "single quote": "a'b",
    "double quote": 'a"b',
    "semicolon": "a;DROP TABLE experiment",
    "percent": "a%20b",
    "percent sign alone": "100%",
    "unicode letter": "café",
    "unicode digit": "a١",
    "emoji": "test🙂",
    "zero width space": "a\u200bb",
    "trailing newline": "abc\n",
    "slash": "a/b",
    "backslash": "a\\b",
    "nul": "a\x00b",
    "leading dash": "-abc",
    "129 characters": "a" * 129,
}


@pytest.mark.parametrize("unsafe", UNSAFE_IDS.values(), ids=UNSAFE_IDS.keys())
def test_unsafe_experiment_id_is_rejected_naming_the_field(client, unsafe):
    response = client.post("/data", json=body(experiment_id=unsafe))
    assert response.status_code == 422
    assert "experiment_id" in response.json()["message"]
    assert row_count() == (0, 0, 0)


@pytest.mark.parametrize("unsafe", UNSAFE_IDS.values(), ids=UNSAFE_IDS.keys())
def test_unsafe_variant_id_is_rejected_naming_the_field(client, unsafe):
    response = client.post("/data", json=body(variants=[variant(variant_id=unsafe)]))
    assert response.status_code == 422
    assert "variants.0.variant_id" in response.json()["message"]
    assert row_count() == (0, 0, 0)


def test_every_safe_character_and_128_characters_are_accepted(client):
    safe = "A" + "Za-z09_.:-" + "x" * 117
    assert len(safe) == 128
    response = client.post("/data", json=body(experiment_id=safe))
    assert response.status_code == 200
    assert client.get("/allocation", params={"experiment_id": safe}).json()["experiment_id"] == safe


def test_unsafe_recompute_experiment_id_is_rejected(client):
    response = client.post("/recompute", json={"experiment_id": "a;b"})
    assert response.status_code == 422
    assert "experiment_id" in response.json()["message"]


def test_exactly_100_variants_are_accepted_and_101_are_not(client):
    hundred = [variant(variant_id=f"v{i}") for i in range(100)]
    assert client.post("/data", json=body(variants=hundred)).status_code == 200
    response = client.post("/data", json=body(variants=[*hundred, variant(variant_id="v100")]))
    assert response.status_code == 422
    assert "variants" in response.json()["message"]
