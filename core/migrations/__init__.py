"""Schema migrations. Each step runs once, in order, in one transaction with its version bump.

`open_database` points the shared database at a file and applies what is pending. After
the first release the schema changes only by appending a step here.
"""

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as apply_operations

from core.db import configure
from core.schema import (
    Allocation,
    AllocationReason,
    ArchivedVariant,
    Counter,
    DailyMetric,
    Experiment,
    ExperimentPolicy,
    Run,
    SchemaVersion,
    Variant,
)
from core.settings import DatabaseSettings


def create_first_schema(db) -> None:
    db.create_tables([Counter, Experiment, Variant, DailyMetric, Run, Allocation, SchemaVersion])
    Counter.insert(name="serving", value=0).on_conflict_ignore().execute()


def add_policy_tables(db) -> None:
    """Per-experiment settings, archived variants, reasons for each split."""
    db.create_tables([ExperimentPolicy, ArchivedVariant, AllocationReason])


def add_run_lease(db) -> None:
    """Run rows become leases: the scheduled time they are for, a lease, its holder.

    Step 1 creates tables from the current models, so on a fresh database these columns
    already exist; add only what is missing.
    """
    table = Run._meta.table_name
    present = {c.name for c in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    operations = [
        migrator.add_column(table, name, Run._meta.fields[name])
        for name in ("scheduled_for", "lease_until", "holder")
        if name not in present
    ]
    apply_operations(*operations)
    indexes = {i.name for i in db.get_indexes(table)}
    if "run_scheduled_for" not in indexes:
        apply_operations(migrator.add_index(table, ("scheduled_for",)))


REDUNDANT_INDEXES = {
    "allocation": "allocation_experiment_id",
    "allocation_reason": "allocation_reason_experiment_id",
}


def drop_redundant_indexes(db) -> None:
    """Drop the indexes on experiment_id alone that the unique indexes starting with it
    make redundant (for lookups and for the foreign key alike): each cost the publish a
    B-tree insert per row, at a place that moves with every experiment.

    Step 1 creates tables from the current models, which no longer declare them, so drop
    only what is there.
    """
    migrator = SchemaMigrator.from_database(db)
    for table, index in REDUNDANT_INDEXES.items():
        if index in {i.name for i in db.get_indexes(table)}:
            apply_operations(migrator.drop_index(table, index))


MIGRATIONS = [create_first_schema, add_policy_tables, add_run_lease, drop_redundant_indexes]


def current_version(db) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(db) -> int:
    """Apply every step the database has not seen; return the resulting version."""
    with db.atomic("IMMEDIATE"):
        version = current_version(db)
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            SchemaVersion.insert(version=number).execute()
        return len(MIGRATIONS)


def open_database(settings: DatabaseSettings):
    """Point the shared database at a file and bring its schema up to date."""
    db = configure(settings)
    with db.connection_context():
        migrate(db)
    return db
