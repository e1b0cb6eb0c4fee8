"""`python -m ingest FILE`: same rules as POST /data, line numbers for bad rows, all or nothing."""

import json

from freezegun import freeze_time

from core.db import database
from core.schema import DailyMetric
from ingest.__main__ import main
from tests.helpers import stored_counts

HEADER = "experiment_id,date,variant_id,impressions,clicks\n"


def count_rows():
    with database.connection_context():
        return DailyMetric.select().count()


def test_csv_file_is_loaded(database_env, tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text(
        HEADER + "ctr_test,2025-12-22,control,1000,50\nctr_test,2025-12-22,variant,1000,70\n"
    )
    assert main([str(path)]) == 0
    assert "loaded 2 rows" in capsys.readouterr().out
    assert stored_counts() == [
        ("2025-12-22", "control", 1000, 50),
        ("2025-12-22", "variant", 1000, 70),
    ]


def test_jsonl_file_is_loaded_and_reloading_replaces(database_env, tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [
        {
            "experiment_id": "ctr_test",
            "date": "2025-12-22",
            "variant_id": "control",
            "impressions": 10,
            "clicks": 1,
        }
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert main([str(path)]) == 0
    rows[0]["clicks"] = 2
    path.write_text(json.dumps(rows[0]) + "\n")
    assert main([str(path)]) == 0
    assert stored_counts() == [("2025-12-22", "control", 10, 2)]


def test_bad_rows_are_reported_by_line_and_nothing_is_loaded(database_env, tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text(
        HEADER
        + "ctr_test,2025-12-22,control,1000,50\n"  # line 2: fine
        + "ctr_test,2025-12-22,variant,100,700\n"  # line 3: clicks > impressions
        + "ctr_test,2025-13-01,variant,100,7\n"  # line 4: bad date
        + "ctr_test,2025-12-22,x y,-5,1\n"  # line 5: bad id
        + "ctr_test,2025-12-22,control,1000,50\n"
    )  # line 6: duplicate of 2
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 3: clicks (700) must not exceed impressions (100)" in err
    assert "line 4: date:" in err
    assert "line 5: variant_id:" in err
    assert "line 6: duplicate of line 2" in err
    assert "4 bad row(s); nothing was loaded" in err
    assert count_rows() == 0


def test_bad_json_line_is_reported(database_env, tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    good = json.dumps(
        {
            "experiment_id": "e",
            "date": "2025-12-22",
            "variant_id": "a",
            "impressions": 1,
            "clicks": 0,
        }
    )
    path.write_text(good + "\n{oops\n" + json.dumps({"experiment_id": "e"}) + "\n")
    assert main([str(path)]) == 1
    err = capsys.readouterr().err
    assert "line 2: not valid JSON" in err
    assert "line 3: variant_id: Field required" in err
    assert "date: Field required" in err
    assert count_rows() == 0


def test_csv_without_the_columns_is_rejected(database_env, tmp_path, capsys):
    path = tmp_path / "metrics.csv"
    path.write_text("experiment,day\nx,y\n")
    assert main([str(path)]) == 1
    assert (
        "missing column(s): experiment_id, date, variant_id, impressions, clicks"
        in capsys.readouterr().err
    )


def test_missing_file_is_an_error(database_env, tmp_path, capsys):
    assert main([str(tmp_path / "nope.csv")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_all_digit_ids_load_from_csv_as_they_do_through_post(database_env, tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + "123,2025-12-22,7,1000,50\n")
    assert main([str(path)]) == 0
    assert stored_counts("123") == [("2025-12-22", "7", 1000, 50)]


@freeze_time("2025-12-22 12:00:00")
def test_dates_from_2000_01_01_to_tomorrow_load_and_no_others(database_env, tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text(HEADER + "e,2000-01-01,a,10,1\ne,2025-12-23,a,10,1\n")
    assert main([str(good)]) == 0
    assert [day for day, *_ in stored_counts("e")] == ["2000-01-01", "2025-12-23"]
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "e,1999-12-31,a,10,1\ne,2025-12-24,a,10,1\n")
    assert main([str(bad)]) == 1
    err = capsys.readouterr().err
    assert "line 2: date: date 1999-12-31 is before 2000-01-01" in err
    assert "line 3: date: date 2025-12-24 is more than one day after today (2025-12-22)" in err
