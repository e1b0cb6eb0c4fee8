"""`python -m ingest` holds one batch of rows at a time, and is still all or nothing per file.

The batch size is cut to 7 rows here, so that a file of a few dozen rows spans many
batches as a million-row file does.
"""

import gc
import re
from datetime import date, timedelta

import pytest
from peewee import OperationalError

from core.db import database, temporary_tables
from core.schema import Variant
from ingest import metrics, staging
from ingest.__main__ import main
from ingest.metrics import MetricRow
from tests.helpers import Other, stored_counts

HEADER = "experiment_id,date,variant_id,impressions,clicks\n"
BATCH = 7
FIRST_DAY = date(2025, 1, 1)


@pytest.fixture
def env(database_env, monkeypatch):
    monkeypatch.setattr(staging, "BATCH_SIZE", BATCH)
    return database_env


def good_rows(count: int) -> list[str]:
    """Rows of experiment "big": five variants a day, day after day (line i + 2 is row i)."""
    return [f"big,{FIRST_DAY + timedelta(days=i // 5)},v{i % 5},100,{i % 50}" for i in range(count)]


def write_csv(tmp_path, lines: list[str], name: str = "metrics.csv"):
    path = tmp_path / name
    path.write_text(HEADER + "".join(line + "\n" for line in lines))
    return path


def lines_reported(err: str) -> list[int]:
    return [int(n) for n in re.findall(r": line (\d+): ", err)]


def test_a_bad_last_row_many_batches_in_loads_nothing(env, tmp_path, capsys):
    assert main([str(write_csv(tmp_path, ["big,2025-01-01,v0,10,1"], "before.csv"))]) == 0
    lines = [*good_rows(100), "big,2025-12-22,v0,5,6"]  # the last row, line 102, is bad
    assert main([str(write_csv(tmp_path, lines))]) == 1
    err = capsys.readouterr().err
    assert "line 102: clicks (6) must not exceed impressions (5)" in err
    assert "1 bad row(s); nothing was loaded" in err
    assert stored_counts("big") == [("2025-01-01", "v0", 10, 1)]


def test_a_duplicate_in_a_later_batch_names_the_first_line(env, tmp_path, capsys):
    lines = [*good_rows(100), "big,2025-01-01,v1,100,2"]  # line 102 repeats line 3
    assert main([str(write_csv(tmp_path, lines))]) == 1
    err = capsys.readouterr().err
    assert "line 102: duplicate of line 3 for big/2025-01-01/v1" in err
    assert "1 bad row(s); nothing was loaded" in err
    assert stored_counts("big") == []


def test_problems_are_reported_in_line_order_and_a_bad_row_is_no_first(env, tmp_path, capsys):
    lines = [
        "e,2025-01-01,a,5,9",  # line 2: bad, so line 3 is the first row of its key
        "e,2025-01-01,a,5,1",
        "e,2025-01-01,a,5,2",  # line 4: duplicate of line 3, found when the batch is flushed
        "e,2025-01-01,b,x,1",  # line 5: bad count
        *[f"e,2025-02-0{day},a,5,1" for day in range(1, 10)],
        "e,2025-01-01,a,5,3",  # line 15, in the next batch: duplicate of line 3
    ]
    assert main([str(write_csv(tmp_path, lines))]) == 1
    err = capsys.readouterr().err
    assert lines_reported(err) == [2, 4, 5, 15]
    assert "line 4: duplicate of line 3 for e/2025-01-01/a" in err
    assert "line 15: duplicate of line 3 for e/2025-01-01/a" in err


def live_metric_rows() -> int:
    return sum(type(o) is MetricRow for o in gc.get_objects())


def test_the_loader_holds_at_most_one_batch_of_rows(env, tmp_path, monkeypatch, capsys):
    flushed, rows_alive = [], []
    flush = staging.Staging.flush

    def counting_flush(self):
        flushed.append(len(self.batch))
        rows_alive.append(live_metric_rows())
        flush(self)

    monkeypatch.setattr(staging.Staging, "flush", counting_flush)
    gc.collect()  # rows of earlier tests in garbage cycles would count until collected
    rows_before = live_metric_rows()
    assert main([str(write_csv(tmp_path, good_rows(60)))]) == 0
    assert "loaded 60 rows" in capsys.readouterr().out
    assert sum(flushed) == 60
    assert max(flushed) == BATCH
    assert max(rows_alive) - rows_before <= BATCH


def test_each_file_is_staged_on_its_own(env, tmp_path, capsys):
    good = write_csv(tmp_path, good_rows(20), "good.csv")
    bad = write_csv(tmp_path, [*good_rows(20), "big,2025-01-01,v0,1,2"], "bad.csv")
    assert main([str(good), str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count("loaded 20 rows") == 2  # the second load replaces the first
    assert "duplicate" not in captured.err
    assert "bad.csv: line 22: clicks (2) must not exceed impressions (1)" in captured.err
    assert len(stored_counts("big")) == 20


def test_new_variants_are_created_in_order_of_first_appearance(env, tmp_path, capsys):
    lines = [
        "e,2025-01-01,zeta,10,1",
        "f,2025-01-01,a,10,1",
        *[f"e,2025-01-0{day},alpha,10,1" for day in range(1, 9)],
        "e,2025-01-09,beta,10,1",
    ]
    assert main([str(write_csv(tmp_path, lines))]) == 0
    assert "(2 new experiments, 4 new variants)" in capsys.readouterr().out
    with database.connection_context():
        names = [v.name for v in Variant.select().order_by(Variant.id)]
    assert names == ["zeta", "a", "alpha", "beta"]


def test_a_file_with_only_a_header_loads_no_rows(env, tmp_path, capsys):
    assert main([str(write_csv(tmp_path, []))]) == 0
    assert "loaded 0 rows (0 new experiments, 0 new variants)" in capsys.readouterr().out


def test_a_cleanup_failure_after_the_commit_does_not_fail_the_load(env, tmp_path, monkeypatch):
    def fail(**kwargs):
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(staging.StagedMetric, "drop_table", fail)  # after the commit
    assert main([str(write_csv(tmp_path, good_rows(20)))]) == 0
    assert len(stored_counts("big")) == 20


def staged_table_state(source_path) -> dict:
    """Validate (stage) a file without storing it; what the staging table then looks like."""
    from ingest import loader
    from ingest.source import open_source

    source = open_source(str(source_path))
    with staging.Staging() as staged, source.stream:
        errors = loader.validate_file(source, date(2025, 12, 22), staged)
        indexes = database.execute_sql(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'staged_metric'"
        ).fetchall()
        (estimate,) = database.execute_sql(
            "SELECT reltuples FROM pg_class WHERE relname = 'staged_metric'"
            " AND pg_table_is_visible(oid)"
        ).fetchone()
        lines = [
            line for (line,) in staging.StagedMetric.select(staging.StagedMetric.line).tuples()
        ]
    return {"errors": errors, "indexes": indexes, "estimate": estimate, "lines": sorted(lines)}


@pytest.mark.parametrize("repeats", [False, True])
def test_postgres_staging_is_indexed_and_analyzed_once_every_batch_is_in(
    db, monkeypatch, tmp_path, repeats
):
    """PostgreSQL stages with COPY into a table without the unique key; after the last batch
    the key is built, a repeated one is named with its first line and left out (as SQLite
    does as rows arrive), and ANALYZE gives the planner the real row count."""
    monkeypatch.setattr(staging, "BATCH_SIZE", BATCH)
    lines = good_rows(30) + (["big,2025-01-01,v1,7,1"] if repeats else [])
    state = staged_table_state(write_csv(tmp_path, lines))
    unique = [d for (d,) in state["indexes"] if "UNIQUE" in d and "variant_id" in d]
    assert len(unique) == 1
    assert state["estimate"] == 30
    assert state["lines"] == list(range(2, 32))
    expected = ["line 32: duplicate of line 3 for big/2025-01-01/v1"] if repeats else []
    assert state["errors"] == expected


@pytest.fixture
def plain_inserts(monkeypatch):
    """The rows of arms a load creates go in without ON CONFLICT (as on PostgreSQL) on
    either engine."""
    monkeypatch.setattr(database.obj, "plain_inserts_pay", True)


def test_a_load_of_new_and_known_arms_stores_and_replaces_each(env, plain_inserts, tmp_path):
    before = ["big,2025-01-01,v0,10,1", "big,2025-01-02,v0,20,2"]
    assert main([str(write_csv(tmp_path, before, "before.csv"))]) == 0
    lines = ["big,2025-01-02,v0,30,3", "big,2025-01-02,v1,40,4", "new,2025-01-02,v0,50,5"]
    assert main([str(write_csv(tmp_path, lines))]) == 0
    assert stored_counts("big") == [
        ("2025-01-01", "v0", 10, 1),
        ("2025-01-02", "v0", 30, 3),
        ("2025-01-02", "v1", 40, 4),
    ]
    assert stored_counts("new") == [("2025-01-02", "v0", 50, 5)]


def test_rows_of_a_new_arm_another_writer_stored_first_are_replaced(
    env, plain_inserts, tmp_path, monkeypatch, capsys
):
    # Another writer created the arm and stored a row of it first, so the loader's variant
    # insert left that arm; the insert without ON CONFLICT meets the key and is undone, and
    # the upsert stores every row.
    assert main([str(write_csv(tmp_path, ["big,2025-01-01,v0,10,1"], "before.csv"))]) == 0
    real = metrics.MetricWriter.resolve_variants

    def as_if_created_here(self, pairs):
        real(self, pairs)
        self.result.new_variants = list(pairs)

    monkeypatch.setattr(metrics.MetricWriter, "resolve_variants", as_if_created_here)
    lines = ["big,2025-01-01,v0,30,3", "big,2025-01-01,v1,40,4"]
    assert main([str(write_csv(tmp_path, lines))]) == 0
    assert "loaded 2 rows" in capsys.readouterr().out
    assert stored_counts("big") == [("2025-01-01", "v0", 30, 3), ("2025-01-01", "v1", 40, 4)]


def test_the_staging_table_belongs_to_the_loaders_connection_alone(db, settings):
    # A TEMP table: another process (or a second load) neither sees it nor collides with
    # it. On PostgreSQL it was once made a plain table, shared by every session.
    with staging.Staging():
        assert "staged_metric" in temporary_tables()
        with Other(settings) as other:
            if other.postgres:
                found = "SELECT relpersistence FROM pg_class WHERE relname = 'staged_metric'"
                assert other.execute(found) == [("t",)]
            else:
                found = "SELECT name FROM sqlite_master WHERE name = 'staged_metric'"
                assert other.execute(found) == []
    assert temporary_tables() == []
