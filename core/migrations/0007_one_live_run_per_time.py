"""Version 7: at most one live (running or successful) run per scheduled time, enforced by
the database. The check before the insert (scheduler/runs.py) is enough under SQLite's
one write lock; clocks on several hosts sharing PostgreSQL could both pass it at once.

A database that already holds two live runs for one time is reported, not fixed: which
of them to keep is an operator's decision.
"""

from peewee import SQL, CharField, DateTimeField, Model, ModelIndex

LIVE = SQL("status IN ('running', 'success')")
NAME = "run_one_live_per_scheduled_time"


class Run(Model):  # frozen: the columns this step reads, as they are at version 7
    scheduled_for = DateTimeField(null=True)
    status = CharField()

    class Meta:
        table_name = "run"


def up(migrator, db) -> None:
    with db.bind_ctx([Run]):
        doubled = list(
            Run.select(Run.scheduled_for)
            .where(Run.scheduled_for.is_null(False) & LIVE)
            .group_by(Run.scheduled_for)
            .having(SQL("COUNT(*) > 1"))
            .tuples()
        )
        if doubled:
            times = ", ".join(str(t) for (t,) in doubled[:5])
            raise RuntimeError(
                f"migration 7: more than one running or successful run for {times}; mark all"
                " but one of each failed (UPDATE run SET status = 'failed' WHERE id = ...), then"
                " start again"
            )
        db.execute(ModelIndex(Run, (Run.scheduled_for,), unique=True, where=LIVE, name=NAME))
