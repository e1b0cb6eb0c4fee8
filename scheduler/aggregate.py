"""The nightly job's aggregation: core.counts' query, a range of experiment keys at a time."""

from datetime import date

from peewee import fn

from core.counts import aggregate_counts, grouped, totals_query
from core.schema import DailyMetric
from core.settings import PolicySettings


def totals_in_chunks(
    experiment_id: str | None = None,
    size: int = 1000,
    as_of: date | None = None,
    defaults: PolicySettings | None = None,
):
    """The same totals as aggregate_counts, for up to `size` experiment keys per query.

    Short queries by key range keep memory flat and never hold a read snapshot open for
    the length of a run (a long reader stops WAL checkpoints while writers go on).
    """
    if experiment_id is not None:
        yield aggregate_counts(experiment_id, as_of, defaults)
        return
    last = DailyMetric.select(fn.MAX(DailyMetric.experiment)).scalar() or 0
    for low in range(0, last, size):
        in_range = DailyMetric.experiment.between(low + 1, low + size)
        chunk = grouped(totals_query(None, as_of, defaults).where(in_range))
        if chunk:
            yield chunk
