"""Pauses that only crash tests switch on, so a test can kill a process at a known point.

`pause("publish")` sleeps BANDIT_TEST_PAUSE_PUBLISH seconds when that variable is set and
does nothing otherwise; it first writes "test pause: publish" to stderr so the test knows
the process has arrived. Points: `compute` (before each experiment is sampled), `stage`
(every row staged in temporary tables, before the write lock is taken) and `publish`
(inside the publish transaction, after the rows are written, before the commit), `load`
(the web process's first load of the served splits, after its port is bound). Never
set these in production: they only slow the job down.
"""

import os
import sys
import time

PREFIX = "BANDIT_TEST_PAUSE_"


def pause(point: str) -> None:
    seconds = os.environ.get(PREFIX + point.upper())
    if not seconds:
        return
    print(f"test pause: {point}", file=sys.stderr, flush=True)
    time.sleep(float(seconds))
