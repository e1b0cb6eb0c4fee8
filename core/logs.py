"""Log lines for operators: plain text or JSON lines, each with the request id, and the
audit trail of what API keys changed. Both processes configure logging here.

The request id and the API key's name live in context variables: set by the web
middleware for one request, they follow it into threadpool handlers and into a
recompute's background thread (which runs in a copy of the request's context).
"""

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
KEY_NAME: ContextVar[str | None] = ContextVar("api_key_name", default=None)
audit_log = logging.getLogger("bandit.audit")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
# (Formatters add message and asctime; uvicorn adds color_message, the same text in color.)
NOT_FIELDS = {"message", "asctime", "color_message"}
STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | NOT_FIELDS


def fields_of(record: logging.LogRecord, leave_out=frozenset()) -> dict:
    skip = STANDARD | leave_out
    return {k: v for k, v in vars(record).items() if k not in skip and not k.startswith("_")}


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
            **fields_of(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextLines(logging.Formatter):
    """The message, then the request id and any extra fields as key=value."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        # An audit line's message already says what changed.
        extra = {"request_id": REQUEST_ID.get(), **fields_of(record, {"changes"})}
        tail = " ".join(f"{k}={v}" for k, v in extra.items() if v is not None)
        return super().formatMessage(record) + (f" [{tail}]" if tail else "")


def log_config(log_format: str) -> dict:
    """A dictConfig for our loggers and uvicorn's (uvicorn.run takes it as log_config)."""
    # Dotted names, not classes, so the dict can also be written to a file for uvicorn's
    # --log-config.
    if log_format == "json":
        formatter = {"()": "core.logs.JsonLines"}
    else:
        formatter = {"()": "core.logs.TextLines", "format": TEXT_FORMAT}
    handler = {"class": "logging.StreamHandler", "formatter": "lines", "stream": "ext://sys.stderr"}
    logger = {"handlers": ["stderr"], "level": "INFO", "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"lines": formatter},
        "handlers": {"stderr": handler},
        "loggers": {
            name: logger for name in ("bandit", "uvicorn", "uvicorn.access", "apscheduler")
        },
    }


def configure_logging(log_format: str) -> None:
    logging.config.dictConfig(log_config(log_format))


def change_text(before, after) -> str:
    return f"{json.dumps(before, default=str)} -> {json.dumps(after, default=str)}"


def audit(action: str, target: str, changes: dict[str, tuple], **fields) -> None:
    """One line per change an API key made: what, on what, from what to what, and the
    key's name (never the key)."""
    who = KEY_NAME.get() or "anonymous"
    said = ", ".join(f"{key}: {change_text(*pair)}" for key, pair in changes.items())
    audit_log.info(
        "%s %s by %s: %s",
        action,
        target,
        who,
        said or "no change",
        extra={
            "action": action,
            "target": target,
            "api_key": who,
            "changes": {key: {"from": b, "to": a} for key, (b, a) in changes.items()},
            **fields,
        },
    )
