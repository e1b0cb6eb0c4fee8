"""The progress line of a long bulk load, on standard error: rows read, percent of the
file, rows per second; at most once a second, on one line that rewrites itself."""

import sys
import time

INTERVAL_S = 1.0  # between two progress lines


class Progress:
    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.interval_s = INTERVAL_S
        self.started = time.monotonic()
        self.shown = self.started

    def show(self, rows: int, fraction: float | None) -> None:
        now = time.monotonic()
        if now - self.shown < self.interval_s:
            return
        self.shown = now
        rate = rows / max(now - self.started, 1e-9)
        percent = f"{fraction:.0%}, " if fraction is not None else ""
        self.stream.write(f"\r{percent}{rows:,} rows read, {rate:,.0f} rows/s")
        self.stream.flush()

    def done(self) -> None:
        if self.shown != self.started:  # a line was shown: end it
            self.stream.write("\n")
            self.stream.flush()


def wanted(asked: bool | None, stream=None) -> bool:
    """Shown when asked (--progress), never when refused (--no-progress), else only on a
    terminal: a log file or a pipe gets no carriage returns."""
    if asked is not None:
        return asked
    return (stream or sys.stderr).isatty()
