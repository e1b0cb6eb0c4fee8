"""core.db.lock_rows on PostgreSQL with more keys than one statement can bind."""

from core.db import lock_rows, write_transaction
from core.schema import Experiment


def test_postgres_lock_rows_takes_more_keys_than_one_statement_binds(db):
    """A bulk load that adds arms to 100,000 experiments locks them all (a statement binds
    at most 65,535 parameters: one SELECT ... FOR UPDATE for all failed)."""
    Experiment.insert_many([(f"e{i}",) for i in range(3)], fields=[Experiment.name]).execute()
    pks = [pk for (pk,) in Experiment.select(Experiment.id).tuples()]
    with write_transaction("ingest"):
        lock_rows(Experiment, [*range(10**6, 10**6 + 70_000), *pks])
