"""The bulk loader as a person uses it: Excel's BOM, standard input, formats by extension,
progress on standard error, and the database it writes to said first."""

import io
import sys

import pytest

from core.db import named
from ingest import loader, progress
from ingest.__main__ import main
from ingest.progress import wanted
from tests.helpers import stored_counts

CSV = (
    "experiment_id,date,variant_id,impressions,clicks\n"
    "ctr_test,2025-12-22,control,1000,50\nctr_test,2025-12-22,variant,1000,70\n"
)
STORED = [("2025-12-22", "control", 1000, 50), ("2025-12-22", "variant", 1000, 70)]


def test_a_csv_with_a_byte_order_mark_loads(database_env, tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode())  # Excel's "CSV UTF-8"
    assert main([str(path)]) == 0
    assert stored_counts() == STORED


def test_a_jsonl_file_with_a_byte_order_mark_loads(database_env, tmp_path):
    path = tmp_path / "rows.jsonl"
    line = '{"experiment_id":"ctr_test","date":"2025-12-22","variant_id":"control",'
    path.write_bytes(b"\xef\xbb\xbf" + (line + '"impressions":1000,"clicks":50}\n').encode())
    assert main([str(path)]) == 0
    assert stored_counts() == STORED[:1]


def test_standard_input_loads_with_its_format_given(database_env, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(CSV.encode())))
    assert main(["-", "--format", "csv"]) == 0
    assert stored_counts() == STORED


def test_standard_input_without_a_format_is_refused(database_env, capsys):
    assert main(["-"]) == 1
    assert "give --format csv or jsonl" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["rows.txt", "rows.json", "rows"])
def test_an_unknown_extension_is_refused(database_env, tmp_path, capsys, name):
    path = tmp_path / name
    path.write_text(CSV)
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "cannot tell the format" in err and ".csv, .jsonl, .ndjson" in err
    assert stored_counts() == []


def test_format_overrides_the_extension(database_env, tmp_path):
    path = tmp_path / "export.txt"
    path.write_text(CSV)
    assert main([str(path), "--format", "csv"]) == 0
    assert stored_counts() == STORED


def test_the_database_is_named_before_anything_else(database_env, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    main([str(path)])
    first = capsys.readouterr().err.splitlines()[0]
    assert first == f"loading into the {named(database_env.database)}"


def test_progress_is_shown_when_asked(database_env, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loader, "PROGRESS_EVERY", 1)
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    assert main([str(path), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "\r" in err and "rows read" in err and "rows/s" in err and "%" in err


def test_progress_is_off_when_standard_error_is_no_terminal(database_env, tmp_path, capsys):
    path = tmp_path / "rows.csv"
    path.write_text(CSV)
    assert main([str(path)]) == 0
    assert "rows read" not in capsys.readouterr().err
    assert not wanted(None, io.StringIO()) and wanted(True, io.StringIO())
