"""The OpenAPI document, completed with what middleware does: keys, 401, 413, 503, error
bodies; and the pages that show it, served from this process (no CDN).

FastAPI documents only what routes declare; the access and size checks run before routes,
so their answers are added here, every error status is shown with the body it really has,
and every path naming an experiment documents the 404 it gives when there is no such
experiment. Schemas nothing refers to (FastAPI's own 422 body, which ours replaces) are
left out.

Swagger UI and ReDoc come from the fastapi-offline package's static files, so /docs and
/redoc work on a machine without internet; ReDoc is told not to load Google Fonts.
"""

import json
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from starlette.staticfiles import StaticFiles

from api.middleware import READ_METHODS, AccessPolicy

ASSETS_PATH = "/docs/assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The pages may load only from this server: ReDoc's footer would otherwise fetch Redocly's
# logo from their CDN (and any future asset from elsewhere would fail loudly, not leak).
SAME_ORIGIN_ONLY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'"
    " 'unsafe-inline'; script-src 'self' 'unsafe-inline'; worker-src 'self' blob:;"
    " font-src 'self' data:"
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
BEARER = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "one of the keys in BANDIT_AUTH_API_KEYS",
    }
}
INVALID_EXAMPLE = {
    "error": "invalid_request",
    "message": "variants.0.clicks: clicks (70) cannot exceed impressions (50)",
    "errors": [
        {
            "field": "variants.0.clicks",
            "message": "variants.0.clicks: clicks (70) cannot exceed impressions (50)",
        }
    ],
}
EXAMPLES = {
    "401": {"error": "unauthorized", "message": "missing API key: send the header"
            " Authorization: Bearer <key>"},
    "404": {"error": "not_found", "message": "unknown experiment 'ctr_test'"},
    "413": {"error": "too_large", "message": "body: larger than the limit of 1048576 bytes"},
    "422": INVALID_EXAMPLE,
    "503": {"error": "busy", "message": "the database is busy with another write; nothing was"
            " stored, retry shortly"},
}  # fmt: skip
RUN_NOT_FOUND = {"error": "not_found", "message": "unknown run 12"}


def error_response(status: str, description: str) -> dict:
    content = {"schema": ERROR_REF, "example": EXAMPLES[status]}
    return {"description": description, "content": {"application/json": content}}


def document_errors(method: str, path: str, responses: dict, writes: bool) -> None:
    if "422" in responses:
        responses["422"] = error_response("422", "invalid request; the message names the field")
    if "{" in path or "404" in responses:
        described = responses.get("404", {}).get("description", "unknown experiment or variant")
        responses["404"] = error_response("404", described)
        if path.startswith("/runs/"):
            responses["404"]["content"]["application/json"]["example"] = RUN_NOT_FOUND
    if writes and "503" not in responses:
        responses["503"] = error_response(
            "503", "the write lock stayed taken past database.busy_timeout_ms; retry"
        )


def document_operation(method: str, path: str, operation: dict, policy: AccessPolicy) -> None:
    responses = operation.setdefault("responses", {})
    writes = method.upper() not in READ_METHODS
    document_errors(method, path, responses, writes)
    if "requestBody" in operation:
        responses["413"] = error_response("413", "body larger than server.max_body_bytes")
    # Writes are documented as keyed even when keys are off: that is how to deploy them.
    if writes or policy.needs_key(method, path):
        operation["security"] = [{"bearer": []}]
        responses["401"] = error_response("401", "missing or wrong API key (when keys are set)")


def referenced(node) -> set[str]:
    """The component schema names a part of the document refers to."""
    text = json.dumps(node)
    prefix = '"#/components/schemas/'
    return {part.split('"', 1)[0] for part in text.split(prefix)[1:]}


def drop_unused_schemas(schema: dict) -> None:
    components = schema["components"]["schemas"]
    used = referenced(schema["paths"])
    while True:  # schemas that used schemas refer to are used too
        more = referenced([components[name] for name in used if name in components]) - used
        if not more:
            break
        used |= more
    schema["components"]["schemas"] = {k: v for k, v in components.items() if k in used}


def build_schema(app: FastAPI) -> dict:
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = BEARER
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            document_operation(method, path, operation, app.state.access)
    drop_unused_schemas(schema)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app)
        return app.openapi_schema

    app.openapi = openapi
    install_docs(app)


def swagger_ui(title: str):
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
    )


def redoc(title: str):
    return get_redoc_html(
        openapi_url="/openapi.json",
        title=f"{title} - ReDoc",
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


def install_docs(app: FastAPI) -> None:
    """/docs and /redoc with their scripts and styles from ASSETS_PATH (the app is made
    with docs_url and redoc_url None, so FastAPI adds no CDN pages of its own)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
    for path, page in (("/docs", swagger_ui), ("/redoc", redoc)):
        app.add_route(path, served_alone(page, app.title), include_in_schema=False)


def served_alone(page, title: str):
    """The page's endpoint, with a policy that lets it load nothing from elsewhere."""

    def endpoint(request):
        response = page(title)
        response.headers.update(SAME_ORIGIN_ONLY)
        return response

    return endpoint
