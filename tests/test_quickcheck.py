"""The bulk loader's quick check accepts only what the pydantic model accepts."""

import json
from dataclasses import dataclass
from datetime import date

import pytest

from ingest import loader
from ingest.quickcheck import QuickCheck
from ingest.source import open_source
from ingest.staging import StagedMetric, Staging

TODAY = date(2025, 12, 22)
HEADER = "experiment_id,date,variant_id,impressions,clicks"
CSV_ROWS = [
    "ctr_test,2025-12-22,control,1000,50",
    "ctr_test,2025-12-23,control,1000,50",  # tomorrow: allowed
    "ctr_test,2025-12-24,control,1000,50",  # two days ahead
    "ctr_test,1999-12-31,control,1000,50",
    "ctr_test,2000-01-01,a.b:c-d_e,0,0",
    "ctr_test,2025-2-01,control,1,0",
    "ctr_test,2025-02-30,control,1,0",
    "ctr_test,20251222,control,1,0",
    "ctr_test,٢٠٢٥-١٢-٢٢,control,1,0",  # non-ASCII digits
    "ctr_test,2025-12-22,control,100,101",
    "ctr_test,2025-12-22,control,-1,0",
    "ctr_test,2025-12-22,control,1.0,0",
    "ctr_test,2025-12-22,control,1e3,0",
    "ctr_test,2025-12-22,control,١٢,0",
    "ctr_test,2025-12-22,control,1000000000000,1",
    "ctr_test,2025-12-22,control,1000000000001,1",
    "ctr_test,2025-12-22,control,007,0",
    "ctr_test,2025-12-22,control, 7,0",
    "ctr_test,2025-12-22,,7,0",
    "_bad,2025-12-22,control,7,0",
    "12345,2025-12-22,control,7,0",  # an all-digit id stays text, as in POST /data
    "ctr_test,2025-12-22,ctrl ,7,0",
    "ctr_test,2025-12-22,cöntrol,7,0",
    "x" * 128 + ",2025-12-22,control,7,0",
    "x" * 129 + ",2025-12-22,control,7,0",
    "ctr_test,2025-12-22,control,7",
    "ctr_test,2025-12-22,control,7,0,extra",
    "ctr_test,2025-12-22,control,1000,50",  # duplicate of the first row
]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Judged:
    errors: list[str]
    rows: list[tuple]  # as staged for the write


def judge(path) -> Judged:
    source = open_source(str(path))
    with Staging() as staging, source.stream:
        errors = loader.validate_file(source, TODAY, staging)
        return Judged(errors, list(StagedMetric.select().order_by(StagedMetric.line).tuples()))


def both_ways(path, monkeypatch):
    quick = judge(path)
    monkeypatch.setattr(loader, "quick_row", lambda *args: None)
    model_only = judge(path)
    return quick, model_only


def test_csv_rows_are_judged_the_same_with_and_without_the_quick_check(db, tmp_path, monkeypatch):
    path = write(tmp_path, "m.csv", "\n".join([HEADER, *CSV_ROWS]) + "\n")
    quick, model_only = both_ways(path, monkeypatch)
    assert quick.errors == model_only.errors
    assert quick.rows == model_only.rows
    assert len(quick.rows) == 5 and len(quick.errors) == len(CSV_ROWS) - 5
    assert quick.errors[-1] == f"line {len(CSV_ROWS) + 1}: duplicate of line 2 for " + (
        "ctr_test/2025-12-22/control"
    )


def test_reordered_and_extra_columns_are_judged_the_same(db, tmp_path, monkeypatch):
    for header, row in [
        ("clicks,impressions,variant_id,date,experiment_id", "5,10,a,2025-12-22,e"),
        (HEADER + ",note", "e,2025-12-22,a,10,5,hello"),
        (HEADER + ",date", "e,2025-12-22,a,10,5,2025-12-21"),
    ]:
        path = write(tmp_path, "m.csv", f"{header}\n{row}\n")
        quick, model_only = both_ways(path, monkeypatch)
        monkeypatch.undo()
        assert (quick.errors, quick.rows) == (model_only.errors, model_only.rows)


JSON_RECORDS = [
    {"experiment_id": "e", "date": "2025-12-22", "variant_id": "a", "impressions": 9, "clicks": 1},
    {
        "experiment_id": "e",
        "date": "2025-12-21",
        "variant_id": "a",
        "impressions": 9.0,
        "clicks": 1,
    },
    {
        "experiment_id": "e",
        "date": "2025-12-20",
        "variant_id": "a",
        "impressions": True,
        "clicks": 1,
    },
    {
        "experiment_id": "e",
        "date": "2025-12-19",
        "variant_id": "a",
        "impressions": "9",
        "clicks": 1,
    },
    {"experiment_id": "e", "date": 1766361600, "variant_id": "a", "impressions": 9, "clicks": 1},
    {"experiment_id": 5, "date": "2025-12-18", "variant_id": "a", "impressions": 9, "clicks": 1},
    {"experiment_id": "e", "date": "2025-12-17", "variant_id": "a", "impressions": 9},
    {
        "experiment_id": "e",
        "date": "2025-12-16",
        "variant_id": "a",
        "impressions": 9,
        "clicks": 1,
        "x": 1,
    },
    ["e", "2025-12-15", "a", 9, 1],
    "text",
]


def test_json_lines_are_judged_the_same_with_and_without_the_quick_check(db, tmp_path, monkeypatch):
    text = "\n".join(json.dumps(r) for r in JSON_RECORDS) + "\n"
    quick, model_only = both_ways(write(tmp_path, "m.jsonl", text), monkeypatch)
    assert quick.errors == model_only.errors
    assert quick.rows == model_only.rows
    assert len(quick.rows) == 1


@pytest.mark.parametrize("row", [tuple(r.split(",")) for r in CSV_ROWS if r.count(",") == 4])
def test_quick_check_never_accepts_what_the_model_rejects(row):
    accepted = QuickCheck(TODAY).accept_text(*row)
    if accepted is not None:
        assert loader.check_record(row, TODAY) == (accepted, None)


def test_a_json_line_holding_a_string_is_reported_as_no_object_not_echoed(db, tmp_path):
    path = write(tmp_path, "m.jsonl", json.dumps("all rows are fine") + "\n")
    errors = judge(path).errors
    assert errors == ["line 1: Input should be a valid dictionary or instance of MetricRecord"]
