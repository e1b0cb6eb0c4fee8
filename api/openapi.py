"""The OpenAPI document, completed with what middleware does: keys, 401, 413, error bodies.

FastAPI documents only what routes declare; the access and size checks run before routes,
so their answers are added here, every 422 is shown with the body it really has, and every
path naming an experiment documents the 404 it gives when there is no such experiment.
"""

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.middleware import READ_METHODS, AccessPolicy

ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
BEARER = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "one of the keys in BANDIT_AUTH_API_KEYS",
    }
}


def error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def document_operation(method: str, path: str, operation: dict, policy: AccessPolicy) -> None:
    responses = operation.setdefault("responses", {})
    if "422" in responses:
        responses["422"] = error_response("invalid request; the message names the field")
    if "{" in path and "404" not in responses:
        responses["404"] = error_response("unknown experiment or variant")
    if "requestBody" in operation:
        responses["413"] = error_response("body larger than server.max_body_bytes")
    # Writes are documented as keyed even when keys are off: that is how to deploy them.
    if method.upper() not in READ_METHODS or policy.needs_key(method, path):
        operation["security"] = [{"bearer": []}]
        responses["401"] = error_response("missing or wrong API key (only when keys are set)")


def build_schema(app: FastAPI) -> dict:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = BEARER
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            document_operation(method, path, operation, app.state.access)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi
