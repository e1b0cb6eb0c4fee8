"""Migrations on real old databases: steps 1..N alone build version N, the releases' own
databases (tests/shipped_databases, each made by that commit's code) upgrade to the schema
a fresh database has, and that schema is the one core/schema.py describes."""

import dataclasses
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import pytest
from peewee import IntegrityError, SqliteDatabase

from core.db import database
from core.db.postgres import LOCK_CLASS, SCOPES, PostgresDatabase
from core.migrations import STEPS, current_version, migrate, open_database
from core.schema import ALL_MODELS, Allocation, AllocationReason, ExperimentPolicy, Run
from core.settings import DatabaseSettings
from tests.helpers import Other

SHIPPED = Path(__file__).parent / "shipped_databases"
LATEST = len(STEPS)

# Rows a database at each version could hold, in that version's columns.
ROWS = {
    1: [
        "UPDATE counter SET value = 3 WHERE name = 'serving'",
        "INSERT INTO experiment VALUES (1, 'ctr_test', '2025-12-20 08:00:00', 3)",
        "INSERT INTO variant VALUES (1, 1, 'control', '2025-12-20 08:00:00')",
        "INSERT INTO variant VALUES (2, 1, 'variant', '2025-12-20 08:00:00')",
        "INSERT INTO daily_metric VALUES (1, 1, 1, '2025-12-22', 1000, 50, '2025-12-22 09:00:00')",
        "INSERT INTO daily_metric VALUES (2, 1, 2, '2025-12-22', 4000000000, 70, '2025-12-22')",
        "INSERT INTO run (id, trigger, effective_date, started_at, finished_at, status,"
        " experiments_processed) VALUES (1, 'nightly', '2025-12-23', '2025-12-22 23:50:00',"
        " '2025-12-22 23:50:02', 'success', 1)",
        "INSERT INTO allocation VALUES (1, 1, 1, '2025-12-23', 12.5, 0.03, 4242, 1, '2025-12-22')",
        "INSERT INTO allocation VALUES (2, 1, 2, '2025-12-23', 87.5, 0.97, 4242, 1, '2025-12-22')",
    ],
    2: [
        "INSERT INTO experiment_policy (id, experiment_id, min_allocation, min_impressions,"
        " exploration_days, winner_probability, value_remaining, auto_rollout, window_days,"
        " discount, method, archived_at, updated_at) VALUES (1, 1, 0.05, 1000000000000, NULL,"
        " NULL, NULL, 1, 14, 0.9, 'thompson', NULL, '2025-12-21 10:00:00')",
        "INSERT INTO archived_variant VALUES (1, 1, 1, '2025-12-21 10:00:00')",
        "INSERT INTO allocation_reason (id, experiment_id, effective_date, run_id, reason,"
        " explanation) VALUES (1, 1, '2025-12-23', 1, 'explore', 'Too few.')",
    ],
    3: [
        "INSERT INTO run (id, trigger, effective_date, experiment_filter, started_at,"
        " finished_at, status, experiments_processed, error, scheduled_for, lease_until, holder)"
        " VALUES (2, 'nightly', '2025-12-24', NULL, '2025-12-23 23:50:00', NULL, 'running', 0,"
        " NULL, '2025-12-23 23:50:00', '2025-12-23 23:55:00', 'host:42')",
    ],
    5: [
        "UPDATE allocation_reason SET buckets = 'sticky 0:1250,1:8750' WHERE id = 1",
        "UPDATE experiment_policy SET assignment = 'daily' WHERE id = 1",
    ],
    6: [
        """UPDATE run SET phase_seconds = '{"compute": 1.5, "publish_lock": 0.1}' WHERE id = 1""",
    ],
}


def schema(path) -> set[tuple]:
    """sqlite_master's tables and indexes, white space folded (row order is creation order)."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return {(kind, name, table, sql and " ".join(sql.split())) for kind, name, table, sql in rows}


def contents(path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY 1').fetchall() for t in tables}


def built(path, version=None) -> Path:
    """A database made by running steps 1..version alone (all of them by default)."""
    db = SqliteDatabase(str(path), pragmas={"foreign_keys": 1})
    with db.connection_context():
        migrate(db, version)
    return path


def shipped(path, version) -> Path:
    """The fresh database the release that introduced `version` made."""
    (dump,) = SHIPPED.glob(f"v{version}_*.sql")
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(dump.read_text())
    return path


def with_rows(path, version) -> Path:
    with closing(sqlite3.connect(path)) as conn, conn:
        for number in range(1, version + 1):
            for statement in ROWS.get(number, []):
                conn.execute(statement)
    return path


def opened(path, settings) -> Path:
    open_database(dataclasses.replace(settings.database, path=str(path))).close()
    return path


def test_a_fresh_database_is_at_the_latest_version(db):
    assert current_version(db) == LATEST
    assert migrate(db) == LATEST


@pytest.mark.parametrize("version", range(1, LATEST + 1))
def test_steps_alone_rebuild_the_database_each_release_made(tmp_path, version):
    ours, theirs = built(tmp_path / "ours.db", version), shipped(tmp_path / "theirs.db", version)
    assert schema(ours) == schema(theirs)
    assert contents(ours) == contents(theirs)


def test_a_sqlite_database_the_last_release_made_opens_unchanged(tmp_path, settings):
    path = shipped(tmp_path / "old.db", LATEST)
    before = contents(path), schema(path)
    assert (contents(opened(path, settings)), schema(path)) == before
    assert schema(path) == schema(built(tmp_path / "fresh.db"))


@pytest.mark.parametrize("version", range(1, LATEST))
def test_a_sqlite_database_an_older_release_made_upgrades_to_the_fresh_schema(
    tmp_path, settings, version
):
    path = opened(shipped(tmp_path / "old.db", version), settings)
    assert schema(path) == schema(built(tmp_path / "fresh.db"))
    assert contents(path)["schema_version"] == [(n, n) for n in range(1, LATEST + 1)]


@pytest.mark.parametrize("version", range(1, LATEST))
def test_rows_of_an_old_sqlite_database_survive_the_upgrade(tmp_path, settings, version):
    path = with_rows(built(tmp_path / "old.db", version), version)
    before = contents(path)
    after = contents(opened(path, settings))
    del before["schema_version"]
    for table, rows in before.items():
        width = len(rows[0]) if rows else 0
        assert [row[:width] for row in after[table]] == rows
    assert schema(path) == schema(built(tmp_path / "fresh.db"))


def test_the_upgraded_sqlite_rows_read_through_the_models(tmp_path, settings):
    opened(with_rows(built(tmp_path / "old.db", 1), 1), settings)
    with database.connection_context():
        run = Run.get_by_id(1)
        assert (run.status, run.lease_until, run.scheduled_for) == ("success", None, None)
        assert [a.percentage for a in Allocation.select().order_by(Allocation.id)] == [12.5, 87.5]
        assert not ExperimentPolicy.select().exists()
        assert not AllocationReason.select().exists()
    database.close()


def test_the_migrated_schema_is_the_one_the_models_describe(tmp_path):
    models = SqliteDatabase(str(tmp_path / "models.db"))
    with models.bind_ctx(ALL_MODELS), models.connection_context():
        models.create_tables(ALL_MODELS)
    assert schema(tmp_path / "models.db") == schema(built(tmp_path / "fresh.db"))


def test_a_step_that_fails_leaves_the_version_before_it(tmp_path, monkeypatch):
    path = built(tmp_path / "old.db", LATEST - 1)
    before = schema(path), contents(path)
    last = STEPS[-1]
    real_up = last.up

    def failing_up(migrator, db):
        real_up(migrator, db)
        raise RuntimeError("disk full")

    monkeypatch.setattr(last, "up", failing_up)
    with pytest.raises(RuntimeError):
        built(path)
    assert (schema(path), contents(path)) == before


def test_a_fresh_database_indexes_experiment_only_through_the_unique_indexes(db):
    tables = ("allocation", "allocation_reason", "daily_metric")
    found = {i.name for table in tables for i in db.get_indexes(table)}
    assert {n for n in found if not n.endswith("_pkey")} == {  # PostgreSQL's primary keys
        "allocation_experiment_id_effective_date_variant_id",
        "allocation_variant_id",
        "allocation_run_id",
        "allocation_reason_experiment_id_effective_date",
        "allocation_reason_run_id",
        "daily_metric_experiment_id_date_variant_id",
    }


def test_daily_metric_has_one_foreign_key_to_the_variant_of_its_experiment(db):
    # A row per column (peewee pairs a composite key's columns wrongly on PostgreSQL; the
    # upgrade test below reads pg_constraint): only variant is referred to.
    keys = db.get_foreign_keys("daily_metric")
    assert {(k.column, k.dest_table) for k in keys} == {
        ("variant_id", "variant"),
        ("experiment_id", "variant"),
    }
    now = "2025-12-22 09:00:00"
    db.execute_sql(f"INSERT INTO experiment VALUES (1, 'a', '{now}', 0), (2, 'b', '{now}', 0)")
    db.execute_sql(f"INSERT INTO variant VALUES (1, 1, 'control', '{now}'), (2, 2, 'x', '{now}')")
    metric = "INSERT INTO daily_metric VALUES ({}, {}, {}, '2025-12-22', 10, 1, '" + now + "')"
    db.execute_sql(metric.format(1, 1, 1))
    for row in ((2, 1, 2), (3, 3, 1), (4, 1, 3)):  # another's variant, no such experiment, arm
        with pytest.raises(IntegrityError), db.atomic():
            db.execute_sql(metric.format(*row))
    db.execute_sql(metric.format(5, 2, 2))
    db.execute_sql("DELETE FROM experiment WHERE id = 1")  # through its variants
    assert db.execute_sql("SELECT id FROM daily_metric").fetchall() == [(5,)]
    db.execute_sql("DELETE FROM variant WHERE id = 2")  # the key's own cascade
    assert db.execute_sql("SELECT id FROM daily_metric").fetchall() == []


def test_step_8_refuses_a_metric_whose_variant_is_another_experiments(tmp_path):
    path = with_rows(built(tmp_path / "old.db", 7), 7)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO experiment VALUES (2, 'other', '2025-12-20 08:00:00', 0)")
        conn.execute("UPDATE daily_metric SET experiment_id = 2 WHERE id = 2")
    with pytest.raises(RuntimeError, match=r"migration 8: .* \(ids 2, maybe more\)"):
        built(path)
    assert current_version(SqliteDatabase(str(path))) == 7


def test_a_postgres_database_at_version_7_upgrades_with_its_rows(postgres_cluster):
    url = postgres_cluster.clone("template0")
    engine = PostgresDatabase(None)
    engine.setup(DatabaseSettings(url=url))
    try:
        with engine.connection_context():
            migrate(engine, 7)
            for statement in ROWS[1]:  # the later ones are SQLite's literals (1 for true)
                engine.execute_sql(statement)
            before = engine.execute_sql("SELECT * FROM daily_metric ORDER BY id").fetchall()
            assert migrate(engine) == LATEST
            after = engine.execute_sql("SELECT * FROM daily_metric ORDER BY id").fetchall()
            assert after == before and len(after) == 2
            keys = engine.execute_sql(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = 'daily_metric'::regclass AND contype = 'f'"
            ).fetchall()
            assert keys == [
                (
                    "daily_metric_variant_id_experiment_id_fkey",
                    "FOREIGN KEY (variant_id, experiment_id) REFERENCES variant(id,"
                    " experiment_id) ON DELETE CASCADE",
                )
            ]
            assert {i.name for i in engine.get_indexes("daily_metric")} == {
                "daily_metric_pkey",
                "daily_metric_experiment_id_date_variant_id",
            }
    finally:
        engine.close_all()
        postgres_cluster.drop(url)


def test_sqlite_lookups_by_experiment_use_the_unique_index(db):
    plan = db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT MAX(effective_date) FROM allocation WHERE experiment_id = 1"
    ).fetchall()
    assert "allocation_experiment_id_effective_date_variant_id" in str(plan)


def test_opening_an_up_to_date_sqlite_database_needs_no_write_lock(settings):
    open_database(settings.database)
    database.close()
    quick = dataclasses.replace(settings.database, busy_timeout_ms=100)
    with closing(sqlite3.connect(settings.database.path, timeout=0)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # a long publish holding the write lock
        open_database(quick)
        with database.connection_context():
            assert current_version(database) == len(STEPS)
        holder.rollback()
    database.close()


def test_a_fresh_postgres_database_has_the_columns_the_models_describe(db):
    for model in ALL_MODELS:
        table = model._meta.table_name
        found = {c.name: c.data_type for c in db.get_columns(table)}
        assert set(found) == {f.column_name for f in model._meta.sorted_fields}, table
    # SQLite's REAL is a double and its INTEGER 64 bits: the same values here.
    kinds = {c.name: c.data_type for c in db.get_columns("experiment_policy")}
    assert kinds["discount"] == "double precision" and kinds["min_impressions"] == "bigint"


def test_postgres_processes_starting_on_an_empty_database_migrate_it_once(postgres_cluster):
    # Two processes opening one empty database at the same moment: the migration lock
    # makes the second wait and then find nothing to do (without it one crashed on a
    # duplicate catalog row).
    url = postgres_cluster.clone("template0")
    try:
        results = []

        def start() -> None:
            engine = PostgresDatabase(None)
            engine.setup(DatabaseSettings(url=url))
            with engine.connection_context():
                results.append(migrate(engine))
            engine.close_all()

        threads = [threading.Thread(target=start) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == [LATEST] * 4
        engine = PostgresDatabase(None)
        engine.setup(DatabaseSettings(url=url))
        with engine.connection_context():
            versions = engine.execute_sql("SELECT version FROM schema_version ORDER BY 1")
            assert [v for (v,) in versions] == list(range(1, LATEST + 1))
        engine.close_all()
    finally:
        postgres_cluster.drop(url)


def test_opening_an_up_to_date_postgres_database_needs_no_migration_lock(settings):
    with Other(settings) as holder:
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(?, ?)", (LOCK_CLASS, SCOPES["migrate"]))
        quick = dataclasses.replace(settings.database, busy_timeout_ms=100)
        open_database(quick)
        with database.connection_context():
            assert current_version(database) == LATEST
        holder.rollback()
