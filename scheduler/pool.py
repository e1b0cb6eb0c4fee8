"""Run the sampler chunk by chunk, in this process or in a pool, and spill the results.

A run over 100,000 experiments must fit in a few hundred MB, so nothing holds every
experiment at once: totals are read a chunk at a time, computed (by `workers` processes
when more than one), and each chunk of results is pickled to a temporary file. The
publish then streams that file into staging tables and copies them in one write
transaction, so a run is still all or nothing and the write lock is held only while the
rows are copied, not while numpy works or Python reads the file (scheduler/publish.py).
"""

import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import IO

CHUNK_EXPERIMENTS = 1000


def in_order(fn: Callable, tasks: Iterable, workers: int) -> Iterator:
    """fn(task) for every task, results in task order; at most 2 * workers tasks in flight."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    # spawn, not fork: the parent may hold an SQLite connection and threads (the web process).
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pending = deque()
        for task in tasks:
            pending.append(pool.apply_async(fn, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def spill(chunks: Iterable[list], file: IO[bytes]) -> int:
    """Pickle each chunk to file; return how many items there were."""
    count = 0
    for chunk in chunks:
        pickle.dump(chunk, file, protocol=pickle.HIGHEST_PROTOCOL)
        count += len(chunk)
    return count


def unspill(file: IO[bytes]) -> Iterator:
    """The items spilled to file, one at a time, in order."""
    file.seek(0)
    while True:
        try:
            chunk = pickle.load(file)
        except EOFError:
            return
        yield from chunk
