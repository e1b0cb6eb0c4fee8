"""Every error is JSON {"error": code, "message": text naming the problem}."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from peewee import OperationalError
from starlette.exceptions import HTTPException

from api.openapi import documented_methods

log = logging.getLogger("bandit.api")


def field_name(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def describe(error: dict) -> str:
    if error.get("type") == "json_invalid":
        return f"body: not valid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    return f"{field_name(error.get('loc', ()))}: {message}"


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": code, "message": message, **extra}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "field": "body" if e.get("type") == "json_invalid" else field_name(e.get("loc", ())),
            "message": describe(e),
        }
        for e in exc.errors()
    ]
    message = "; ".join(e["message"] for e in errors[:5])
    return JSONResponse(error_body("invalid_request", message, errors=errors), status_code=422)


def unparsable_body(exc: HTTPException) -> bool:
    """FastAPI answers 400 when a JSON body is not even text (bad UTF-8); that is a 422 here."""
    return exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; the schema knows them all.
        methods = documented_methods(request.app.openapi(), request.url.path)
        headers = {**(headers or {}), "Allow": ", ".join(methods)}
    if unparsable_body(exc):
        message = "body: not valid JSON (not UTF-8 text)"
        return JSONResponse(
            error_body("invalid_request", message, errors=[{"field": "body", "message": message}]),
            status_code=422,
        )
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}.get(
        exc.status_code, "error"
    )
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=headers,
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal", "internal error; see the server log"), status_code=500
    )


async def database_busy(request: Request, exc: OperationalError) -> JSONResponse:
    """The write lock stayed taken past busy_timeout_ms (a long publish, a bulk load):
    nothing was stored and the client may retry, so say so instead of a bare 500."""
    if "locked" not in str(exc) and "busy" not in str(exc):
        return await unexpected_error(request, exc)
    log.warning("%s %s: database busy (%s)", request.method, request.url.path, exc)
    message = "the database is busy with another write; nothing was stored, retry shortly"
    return JSONResponse(error_body("busy", message), status_code=503, headers={"Retry-After": "1"})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(OperationalError, database_busy)
    app.add_exception_handler(Exception, unexpected_error)
