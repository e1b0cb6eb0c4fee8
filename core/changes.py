"""The serving counter: a number that every change to what GET /allocation serves bumps.

Web processes poll experiments whose version is above the last value they saw, so a
publish by any process reaches every worker without re-reading everything.
"""

from peewee import SelectQuery, chunked

from core.db import notify_serving
from core.schema import Counter, Experiment

STAMP_BATCH = 500  # ids per UPDATE ... WHERE id IN (...)


def bump_serving_version() -> int:
    """Take the next counter value; call inside a write transaction. On PostgreSQL every
    listening web process hears of it when that transaction commits (never on rollback)."""
    Counter.update(value=Counter.value + 1).where(Counter.name == "serving").execute()
    version = Counter.get_by_id("serving").value
    notify_serving(version)
    return version


def mark_changed(experiment_ids) -> None:
    """Flag experiments whose served allocation changed; call inside a write transaction.

    experiment_ids is a list, or a query that selects them: then it is one UPDATE however
    many there are (the publish passes its staged experiments that way).
    """
    if isinstance(experiment_ids, SelectQuery):
        if experiment_ids.exists():
            stamp(bump_serving_version(), experiment_ids)
        return
    ids = list(experiment_ids)
    if not ids:
        return
    version = bump_serving_version()
    for batch in chunked(ids, STAMP_BATCH):
        stamp(version, batch)


def stamp(version: int, experiment_ids) -> None:
    Experiment.update(version=version).where(Experiment.id.in_(experiment_ids)).execute()
