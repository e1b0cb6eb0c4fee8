"""Migration 4: the indexes on experiment_id alone are gone, on fresh and old databases."""

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_operations

from core.migrations import MIGRATIONS, REDUNDANT_INDEXES, drop_redundant_indexes, migrate
from core.schema import SchemaVersion


def indexes(db) -> set[str]:
    return {i.name for table in REDUNDANT_INDEXES for i in db.get_indexes(table)}


def test_a_fresh_database_indexes_experiment_only_through_the_unique_indexes(db):
    assert indexes(db) == {
        "allocation_experiment_id_effective_date_variant_id",
        "allocation_variant_id",
        "allocation_run_id",
        "allocation_reason_experiment_id_effective_date",
        "allocation_reason_run_id",
    }


def test_the_migration_drops_them_from_a_database_from_before_it(db):
    migrator = SchemaMigrator.from_database(db)
    apply_operations(
        *[migrator.add_index(table, ("experiment_id",)) for table in REDUNDANT_INDEXES],
    )
    assert set(REDUNDANT_INDEXES.values()) <= indexes(db)
    before = MIGRATIONS.index(drop_redundant_indexes)
    SchemaVersion.delete().where(SchemaVersion.version > before).execute()
    assert migrate(db) == len(MIGRATIONS)
    assert not set(REDUNDANT_INDEXES.values()) & indexes(db)
    assert migrate(db) == len(MIGRATIONS)


def test_lookups_by_experiment_use_the_unique_index(db):
    plan = db.execute_sql(
        "EXPLAIN QUERY PLAN SELECT MAX(effective_date) FROM allocation WHERE experiment_id = 1"
    ).fetchall()
    assert "allocation_experiment_id_effective_date_variant_id" in str(plan)
