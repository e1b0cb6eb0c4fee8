"""A fast yes for bulk-load rows that are plainly valid; every other row goes to pydantic.

Validating a million rows with a pydantic model each costs more than storing them. Most
rows repeat the same few ids and dates, so this checker remembers which ids and dates are
good, and accepts a row only when every rule of ingest/validation.py plainly holds. It
never rejects: a row it does not accept is checked by the pydantic model, which gives the
error message (or accepts it). So both paths reject exactly the same rows, and the
messages are the model's (tests/test_quickcheck.py compares them row by row).
"""

import re
from datetime import date

from ingest.metrics import MetricRow
from ingest.validation import ID_PATTERN, MAX_COUNT, date_problem

DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ID_TEXT = re.compile(ID_PATTERN)


class QuickCheck:
    """Accepts (experiment_id, date, variant_id, impressions, clicks) or returns None."""

    def __init__(self, today: date):
        self.today = today
        self.good_ids: set[str] = set()
        self.dates: dict[str, date | None] = {}

    def valid_id(self, value) -> bool:
        if value in self.good_ids:
            return True
        if type(value) is str and ID_TEXT.fullmatch(value):
            self.good_ids.add(value)
            return True
        return False

    def valid_date(self, value) -> date | None:
        if type(value) is not str:
            return None
        if value not in self.dates:
            self.dates[value] = self.parse_date(value)
        return self.dates[value]

    def parse_date(self, value: str) -> date | None:
        if not DATE_TEXT.fullmatch(value):
            return None
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return None
        return None if date_problem(day, self.today) else day

    def accept(self, experiment_id, day, variant_id, impressions, clicks) -> MetricRow | None:
        if type(impressions) is not int or type(clicks) is not int:
            return None
        if not (0 <= clicks <= impressions <= MAX_COUNT):
            return None
        if not (self.valid_id(experiment_id) and self.valid_id(variant_id)):
            return None
        parsed = self.valid_date(day)
        if parsed is None:
            return None
        return MetricRow(experiment_id, parsed, variant_id, impressions, clicks)
