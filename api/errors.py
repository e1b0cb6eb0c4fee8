"""Every error is JSON {"error": code, "message": text naming the problem}."""

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.db import DATABASE_ERRORS, is_busy, storage_fault
from core.experiments import InvalidChange, UnknownExperiment
from ingest.writer_process import WriteRefused

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


def error_response(code: str, message: str, status: int, headers=None, **extra) -> JSONResponse:
    """The one error shape: {"error": code, "message": text naming the problem, ...}."""
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def invalid(field: str, message: str) -> RequestValidationError:
    """A 422 naming `field` (in the body, unless it is a dotted query or path name)."""
    where = tuple(field.split(".")) if "." in field else ("body", field)
    return RequestValidationError([{"loc": where, "msg": message, "type": "value_error"}])


def documented_methods(schema: dict, path: str) -> list[str]:
    """The methods the schema documents for a concrete path such as /experiments/x/settings."""
    methods: set[str] = set()
    for template, operations in schema.get("paths", {}).items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            methods |= {m.upper() for m in operations}
    return sorted(methods)


MAX_LISTED_ERRORS = 20  # a body with 80,000 unknown fields must not get a 5 MB answer
# What FastAPI answers (400) when decoding the body raised anything but a JSON syntax error.
UNPARSABLE = "There was an error parsing the body"
PARSE_PROBLEMS = {
    UnicodeDecodeError: "not UTF-8 text",
    RecursionError: "nested too deeply",
    ValueError: "a number is too long",
}


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    found = exc.errors()
    errors = [
        {
            "field": "body" if e.get("type") == "json_invalid" else field_name(e.get("loc", ())),
            "message": describe(e),
        }
        for e in found[:MAX_LISTED_ERRORS]
    ]
    message = "; ".join(e["message"] for e in errors[:5])
    if len(found) > 5:
        message += f"; and {len(found) - 5} more problem(s)"
    return error_response("invalid_request", message, 422, errors=errors)


def parse_problem(exc: HTTPException) -> str | None:
    """Why FastAPI could not decode a JSON body (its 400 is a 422 naming the body here)."""
    if exc.status_code != 400 or exc.detail != UNPARSABLE:
        return None
    cause = exc.__cause__
    found = next((text for kind, text in PARSE_PROBLEMS.items() if isinstance(cause, kind)), None)
    return found or "cannot be decoded"


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 405:
        # Starlette names only the first matching route's methods; the schema knows them all.
        methods = documented_methods(request.app.openapi(), request.url.path)
        headers = {**(headers or {}), "Allow": ", ".join(methods)}
    problem = parse_problem(exc)
    if problem:
        message = f"body: not valid JSON ({problem})"
        errors = [{"field": "body", "message": message}]
        return error_response("invalid_request", message, 422, errors=errors)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 413: "too_large"}.get(
        exc.status_code, "error"
    )
    return error_response(code, str(exc.detail), exc.status_code, headers=headers)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response("internal", "internal error; see the server log", 500)


STORAGE_RETRY_AFTER_S = "30"  # an operator must act (free space, fix a mount): not soon


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """A busy lock or a storage fault is a 503 that names it (nothing was stored: a write
    is one transaction), logged in one line; any other database error is a bug (500)."""
    if is_busy(exc):
        return busy(request, exc)
    cause = storage_fault(exc)
    if cause is None:
        return await unexpected_error(request, exc)
    return storage(request, cause)


def busy(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database busy (%s)", request.method, request.url.path, exc)
    message = "the database is busy with another write; nothing was stored, retry shortly"
    return error_response("busy", message, 503, headers={"Retry-After": "1"})


def storage(request: Request, cause: str) -> JSONResponse:
    log.warning("%s %s: storage fault: %s", request.method, request.url.path, cause)
    message = f"storage fault: {cause}; nothing was stored, retry later"
    return error_response("storage", message, 503, headers={"Retry-After": STORAGE_RETRY_AFTER_S})


async def write_refused(request: Request, exc: WriteRefused) -> JSONResponse:
    """What the writer process refused, answered as database_error answers it here."""
    if exc.kind == "busy":
        return busy(request, exc)
    if exc.kind == "storage":
        return storage(request, str(exc))
    if exc.kind == "stopped":
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return error_response("unavailable", str(exc), 503, headers={"Retry-After": "1"})
    return await unexpected_error(request, exc)


async def unknown_experiment(request: Request, exc: UnknownExperiment) -> JSONResponse:
    return error_response("not_found", str(exc), 404)


async def invalid_change(request: Request, exc: InvalidChange) -> JSONResponse:
    return await validation_error(request, invalid(exc.field, exc.message))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, database_error)
    app.add_exception_handler(WriteRefused, write_refused)
    app.add_exception_handler(UnknownExperiment, unknown_experiment)
    app.add_exception_handler(InvalidChange, invalid_change)
    app.add_exception_handler(Exception, unexpected_error)
