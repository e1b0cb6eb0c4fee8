"""Bulk load a CSV or JSON-lines file of daily metrics: all rows or none.

Every row is validated first, with the same rules as POST /data; if any row is bad the
file is reported by line number and nothing is written. Otherwise all rows are upserted
in one transaction.
"""

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from ingest.metrics import MetricRow, StoreResult, store_rows
from ingest.validation import Identifier, IsoDate, VariantCounts, date_problem

COLUMNS = ("experiment_id", "date", "variant_id", "impressions", "clicks")


class MetricRecord(VariantCounts):
    experiment_id: Identifier
    date: IsoDate


@dataclass
class LoadReport:
    rows: list[MetricRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stored: StoreResult | None = None


def csv_records(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            yield 1, f"header is missing column(s): {', '.join(missing)}"
            return
        for record in reader:
            yield reader.line_num, {k: as_int(v) for k, v in record.items() if k is not None}


def as_int(value):
    """CSV cells are text: turn plain digit strings into ints so StrictInt accepts them."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def jsonl_records(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                yield number, f"not valid JSON: {e.msg}"


def records(path: Path) -> Iterator[tuple[int, object]]:
    return csv_records(path) if path.suffix.lower() == ".csv" else jsonl_records(path)


def describe(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {message}" if where else message


def check_record(record, today: date) -> tuple[MetricRow | None, str | None]:
    if isinstance(record, str):
        return None, record
    try:
        r = MetricRecord.model_validate(record)
    except ValidationError as e:
        return None, "; ".join(describe(error) for error in e.errors())
    problem = date_problem(r.date, today)
    if problem:
        return None, f"date: {problem}"
    return MetricRow(r.experiment_id, r.date, r.variant_id, r.impressions, r.clicks), None


def validate_file(path: Path, today: date) -> LoadReport:
    report = LoadReport()
    first_line: dict[tuple, int] = {}
    for line, record in records(path):
        row, problem = check_record(record, today)
        if row is not None:
            key = (row.experiment_id, row.date, row.variant_id)
            if key in first_line:
                problem = f"duplicate of line {first_line[key]} for {key[0]}/{key[1]}/{key[2]}"
            first_line.setdefault(key, line)
        if problem:
            report.errors.append(f"line {line}: {problem}")
        else:
            report.rows.append(row)
    return report


def load_file(path: Path, today: date) -> LoadReport:
    report = validate_file(path, today)
    if not report.errors:
        report.stored = store_rows(report.rows)
    return report


def print_report(path: Path, report: LoadReport, limit: int = 50) -> None:
    if report.errors:
        for error in report.errors[:limit]:
            print(f"{path}: {error}", file=sys.stderr)
        if len(report.errors) > limit:
            print(f"... and {len(report.errors) - limit} more", file=sys.stderr)
        print(f"{path}: {len(report.errors)} bad row(s); nothing was loaded", file=sys.stderr)
        return
    stored = report.stored
    print(
        f"{path}: loaded {stored.rows} rows ({len(stored.new_experiments)} new experiments, "
        f"{len(stored.new_variants)} new variants)"
    )
