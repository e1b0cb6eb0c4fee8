"""Schema migrations. Each step runs once, in order, in one transaction with its version bump.

After the first release the schema changes only by appending a step here.
"""

from core.db import write_transaction
from core.models import ALL_MODELS, Counter, SchemaVersion


def create_first_schema(db) -> None:
    db.create_tables(ALL_MODELS)
    Counter.insert(name="serving", value=0).on_conflict_ignore().execute()


def add_policy_tables(db) -> None:
    """Issue 3: per-experiment settings, archived variants, reasons for each split.

    New tables only (no ALTER), so the step is safe whichever order it lands in.
    """
    from core.policy_models import POLICY_MODELS

    db.create_tables(POLICY_MODELS)


MIGRATIONS = [create_first_schema, add_policy_tables]


def current_version(db) -> int:
    if not db.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select().order_by(SchemaVersion.version.desc()).first()
    return row.version if row else 0


def migrate(db) -> int:
    """Apply every step the database has not seen; return the resulting version."""
    with write_transaction():
        version = current_version(db)
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            step(db)
            SchemaVersion.insert(version=number).execute()
        return len(MIGRATIONS)
