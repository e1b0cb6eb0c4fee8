"""The job in chunks and in worker processes gives exactly the result of one pass."""

import dataclasses
import io
from datetime import date

import numpy as np
import pytest
from peewee import chunked

from core.counts import aggregate_counts
from core.sampling import percentile, row_max
from core.schema import Allocation
from ingest.metrics import MetricRow, store_rows
from scheduler import job
from scheduler.aggregate import totals_in_chunks
from scheduler.pool import in_order, spill, unspill
from tests.helpers import NOW


def load_experiments(count: int) -> None:
    store_rows(
        [
            MetricRow(f"e{i}", date(2025, 12, day), f"v{a}", 100 + 7 * i + a, 5 + (i * a) % 11)
            for i in range(count)
            for day in (20, 21)
            for a in range(2 + i % 4)
        ]
    )


def published() -> list[tuple]:
    return list(
        Allocation.select(
            Allocation.experiment,
            Allocation.variant,
            Allocation.percentage,
            Allocation.probability,
            Allocation.seed,
        )
        .order_by(Allocation.experiment, Allocation.variant)
        .tuples()
    )


def with_workers(settings, workers: int):
    sampling = dataclasses.replace(settings.sampling, samples=2000, workers=workers)
    return dataclasses.replace(settings, sampling=sampling)


def test_chunked_totals_match_the_single_query(db):
    load_experiments(7)
    chunks = list(totals_in_chunks(size=3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [t for chunk in chunks for t in chunk] == aggregate_counts()


def test_chunked_run_publishes_what_one_chunk_does(db, settings, monkeypatch):
    load_experiments(7)
    job.run_job(NOW, with_workers(settings, 1))
    whole = published()
    monkeypatch.setattr(job, "CHUNK_EXPERIMENTS", 2)
    monkeypatch.setattr("scheduler.publish.STAGE_BATCH", 3)
    summary = job.run_job(NOW, with_workers(settings, 1))
    assert summary.experiments_processed == 7
    assert published() == whole


@pytest.mark.processes
def test_two_workers_publish_exactly_what_one_does(db, settings, monkeypatch):
    load_experiments(9)
    monkeypatch.setattr(job, "CHUNK_EXPERIMENTS", 2)
    job.run_job(NOW, with_workers(settings, 1))
    one = published()
    summary = job.run_job(NOW, with_workers(settings, 2))
    assert summary.status == "success" and summary.experiments_processed == 9
    assert published() == one


def test_spill_gives_back_every_item_in_order():
    file = io.BytesIO()
    assert spill(chunked(range(10), 3), file) == 10
    assert list(unspill(file)) == list(range(10))


def test_in_order_keeps_task_order_in_this_process():
    assert list(in_order(abs, [-3, 2, -1], workers=1)) == [3, 2, 1]


@pytest.mark.parametrize("q", [95, 50, 0, 100, 99.9])
def test_fast_percentile_is_numpy_percentile_bit_for_bit(q):
    rng = np.random.default_rng(int(q * 10))
    for size in [1, 2, 3, 10, 999, 10_000]:
        for _ in range(50):
            values = rng.beta(2.0, 30.0, size) * rng.choice([1e-9, 1.0, 1e9])
            assert percentile(values, q) == np.percentile(values, q)
        assert percentile(np.zeros(size), q) == np.percentile(np.zeros(size), q)


def test_row_max_is_numpy_max_over_arms():
    draws = np.random.default_rng(3).beta([2.0, 3.0, 4.0], 20.0, size=(1000, 3))
    assert np.array_equal(row_max(draws), draws.max(axis=1))
