"""Bulk load a CSV or JSON-lines file of daily metrics: all rows or none.

Every row is validated first, with the same rules as POST /data, and the valid ones are
staged in a temporary table (ingest/staging.py) rather than kept in memory; if any row is
bad the file is reported by line number and nothing is written. Otherwise all rows are
upserted from that table in one transaction.
"""

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter
from pathlib import Path

from pydantic import ValidationError

from core.experiments import InvalidChange
from ingest.metrics import MetricRow, StoreResult
from ingest.progress import Progress
from ingest.quickcheck import QuickCheck
from ingest.source import Source
from ingest.staging import Staging
from ingest.validation import Identifier, IsoDate, VariantCounts, date_problem

COLUMNS = ("experiment_id", "date", "variant_id", "impressions", "clicks")
COLUMN_SET = set(COLUMNS)
COUNT_COLUMNS = frozenset({"impressions", "clicks"})
PROGRESS_EVERY = 10_000  # lines between two looks at the clock for the progress line


class Problem(str):
    """Why a line holds no record at all (a JSON line may hold a plain string)."""


# What records() yields per line, with its number: Cells, a Problem, or any other value
# for the model to judge (a dict of the fields, for a good line).
Cells = tuple  # a CSV row's five text cells, in COLUMNS order
Record = tuple[int, object]


class MetricRecord(VariantCounts):
    experiment_id: Identifier
    date: IsoDate


@dataclass
class LoadReport:
    errors: list[str] = field(default_factory=list)
    stored: StoreResult | None = None


def csv_records(f) -> Iterator[Record]:
    """Cells when the row has exactly the header's five cells, else the dict
    csv.DictReader would give, with the counts as ints (pydantic names the fault)."""
    reader = csv.reader(f)
    header = next(reader, [])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        yield 1, Problem(f"header is missing column(s): {', '.join(missing)}")
        return
    plain = len(set(header)) == len(header) == 5
    in_order = itemgetter(*[header.index(c) for c in COLUMNS]) if plain else None
    for row in reader:
        if in_order is not None and len(row) == 5:
            yield reader.line_num, in_order(row)
        elif row:  # csv.DictReader skips empty lines too
            yield reader.line_num, counts_as_ints(as_dict(header, row))


def as_dict(header: list[str], cells: list) -> dict:
    """What csv.DictReader makes of a row: extra cells dropped, missing ones None."""
    return {key: cells[i] if i < len(cells) else None for i, key in enumerate(header)}


def as_int(value):
    """CSV cells are text: turn plain digit strings into ints so StrictInt accepts them."""
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else value


def counts_as_ints(record: dict) -> dict:
    """Only the count cells: an all-digit id such as "123" stays text, as in POST /data."""
    return {k: as_int(v) if k in COUNT_COLUMNS else v for k, v in record.items()}


def jsonl_records(f) -> Iterator[Record]:
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as e:
            yield number, Problem(f"not valid JSON: {e.msg}")


READERS = {"csv": csv_records, "jsonl": jsonl_records}


def records(source: Source) -> Iterator[Record]:
    return READERS[source.format](source.stream)


def describe(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {message}" if where else message


def check_record(record, today: date) -> tuple[MetricRow | None, str | None]:
    if type(record) is Problem:
        return None, str(record)
    if type(record) is Cells:  # as the model sees CSV text cells: with the counts as ints
        record = counts_as_ints(dict(zip(COLUMNS, record, strict=True)))
    try:
        r = MetricRecord.model_validate(record)
    except ValidationError as e:
        return None, "; ".join(describe(error) for error in e.errors())
    problem = date_problem(r.date, today)
    if problem:
        return None, f"date: {problem}"
    return MetricRow(r.experiment_id, r.date, r.variant_id, r.impressions, r.clicks), None


def quick_row(quick: QuickCheck, record) -> MetricRow | None:
    if type(record) is Cells:
        return quick.accept_text(*record)
    if type(record) is dict and record.keys() == COLUMN_SET:
        return quick.accept(*(record[c] for c in COLUMNS))
    return None


def validate_file(
    source: Source, today: date, staging: Staging, progress: Progress | None = None
) -> list[str]:
    """Stage every valid row of the file; return its problems ("line N: ...") by line.

    A row that repeats the (experiment, date, variant) of an earlier valid row is a
    problem too; the staging table finds it when its batch is flushed.
    """
    quick = QuickCheck(today)
    problems: list[tuple[int, str]] = []
    for line, record in records(source):
        if progress is not None and not line % PROGRESS_EVERY:
            progress.show(line, source.fraction_read())
        row = quick_row(quick, record)
        if row is None:
            row, problem = check_record(record, today)
            if problem:
                problems.append((line, problem))
                continue
        staging.add(line, row)
    staging.finish()
    problems += staging.duplicates
    return [f"line {line}: {problem}" for line, problem in sorted(problems, key=itemgetter(0))]


def load_file(
    source: Source, today: date, progress: Progress | None = None, max_arms: int | None = None
) -> LoadReport:
    with Staging(max_arms=max_arms) as staging:
        report = LoadReport(errors=validate_file(source, today, staging, progress))
        if not report.errors:
            try:
                report.stored = staging.store()
            except InvalidChange as refused:  # the arms' cap; the transaction rolled back
                report.errors = [refused.message]
    return report


def print_report(path: Path | str, report: LoadReport, limit: int = 50) -> None:
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
