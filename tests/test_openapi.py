"""The OpenAPI document: each error status shown with the body it really has, the 503s
documented, ErrorOut as 422s send it, and no schema that nothing uses."""

import json

from tests.helpers import CONTRACT_POST

CODES = {"401": "unauthorized", "404": "not_found", "413": "too_large", "422": "invalid_request"}


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def example(response: dict) -> dict:
    return response["content"]["application/json"]["example"]


def test_every_error_example_is_the_body_of_its_status(client):
    schema = client.get("/openapi.json").json()
    seen = set()
    for _, _, operation in operations(schema):
        for status, code in CODES.items():
            if status in operation["responses"]:
                assert example(operation["responses"][status])["error"] == code
                seen.add(status)
    assert seen == set(CODES)


def test_the_422_example_is_what_a_bad_post_gets(client):
    schema = client.get("/openapi.json").json()
    documented = example(schema["paths"]["/data"]["post"]["responses"]["422"])
    bad = {**CONTRACT_POST, "variants": [{"variant_id": "a", "impressions": 50, "clicks": 70}]}
    got = client.post("/data", json=bad).json()
    assert got.keys() == documented.keys() == {"error", "message", "errors"}
    assert got["errors"][0].keys() == documented["errors"][0].keys()


def test_error_out_has_the_optional_errors_array(client):
    error_out = client.get("/openapi.json").json()["components"]["schemas"]["ErrorOut"]
    assert error_out["required"] == ["error", "message"]
    assert "errors" in error_out["properties"]


def test_writes_document_the_busy_503_and_probes_their_own(client):
    schema = client.get("/openapi.json").json()
    for path, method, operation in operations(schema):
        if method in ("post", "put"):
            assert example(operation["responses"]["503"])["error"] == "busy", (method, path)
    for path in ("/healthz", "/readyz"):
        assert "503" in schema["paths"][path]["get"]["responses"]


def test_every_schema_is_used_and_every_reference_exists(client):
    schema = client.get("/openapi.json").json()
    text = json.dumps(schema)
    names = set(schema["components"]["schemas"])
    referenced = {part.split('"', 1)[0] for part in text.split('"#/components/schemas/')[1:]}
    assert referenced == names
    assert "HTTPValidationError" not in names and "ValidationError" not in names
