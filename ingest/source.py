"""Where a bulk load reads from: a file, its format told by its extension, or standard
input (`-`) with the format given. Read as UTF-8 with an optional byte-order mark, which
Excel writes at the start of a "CSV UTF-8" file."""

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
STDIN = "-"


class UnknownFormat(ValueError):
    """The format cannot be told: the message says what to do."""


def format_of(name: str, given: str | None) -> str:
    if given is not None:
        return given
    if name == STDIN:
        raise UnknownFormat("-: standard input has no extension: give --format csv or jsonl")
    found = FORMATS.get(Path(name).suffix.lower())
    if found is None:
        known = ", ".join(FORMATS)
        raise UnknownFormat(
            f"{name}: cannot tell the format from the extension {Path(name).suffix!r}:"
            f" name the file {known}, or give --format csv or jsonl"
        )
    return found


@dataclass
class Source:
    name: str
    format: str
    stream: io.TextIOBase
    size: int | None  # bytes, when known (a file), for the progress line

    def fraction_read(self) -> float | None:
        if not self.size:
            return None
        return min(1.0, self.stream.buffer.tell() / self.size)


def open_source(name: str, given_format: str | None = None) -> Source:
    """Raises UnknownFormat, or OSError for a file that cannot be opened."""
    kind = format_of(name, given_format)
    if name == STDIN:
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        return Source(name, kind, stream, None)
    stream = open(name, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the caller)
    return Source(name, kind, stream, os.fstat(stream.fileno()).st_size)
