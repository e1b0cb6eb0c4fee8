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
from ingest.validation import ID_PATTERN, MAX_COUNT, date_problem, iso_date

new_row = MetricRow._make  # looked up once, not per row
ID_TEXT = re.compile(ID_PATTERN)


def digits_only(text: str) -> bool:
    return text.isdigit() and text.isascii()


class QuickCheck:
    """Accepts (experiment_id, date, variant_id, impressions, clicks) or returns None.

    Written for speed (a million calls per load): set and dict lookups first, and a
    method call only for a value not seen before.
    """

    def __init__(self, today: date):
        self.today = today
        self.ids: set[str] = set()  # valid ids
        self.dates: dict[str, date | None] = {}

    def accept_text(self, experiment_id, day, variant_id, impressions, clicks):
        """A CSV row's text cells. The loader turns the count cells into ints when they are
        ASCII digits (ingest/loader.py counts_as_ints), so counts must be digits."""
        ids = self.ids
        if experiment_id not in ids and not self.learn_id(experiment_id):
            return None
        if variant_id not in ids and not self.learn_id(variant_id):
            return None
        if not (digits_only(impressions) and digits_only(clicks)):
            return None
        return self.checked(experiment_id, day, variant_id, int(impressions), int(clicks))

    def accept(self, experiment_id, day, variant_id, impressions, clicks) -> MetricRow | None:
        """A JSON record's values."""
        if type(impressions) is not int or type(clicks) is not int:
            return None
        ids = self.ids
        if experiment_id not in ids and not self.learn_id(experiment_id):
            return None
        if variant_id not in ids and not self.learn_id(variant_id):
            return None
        return self.checked(experiment_id, day, variant_id, impressions, clicks)

    def checked(self, experiment_id, day, variant_id, impressions, clicks):
        if not (0 <= clicks <= impressions <= MAX_COUNT):
            return None
        parsed = self.dates.get(day) if type(day) is str else None
        if parsed is None and (parsed := self.learn_date(day)) is None:
            return None
        return new_row((experiment_id, parsed, variant_id, impressions, clicks))

    def learn_id(self, value) -> bool:
        if type(value) is str and ID_TEXT.fullmatch(value):
            self.ids.add(value)
            return True
        return False

    def learn_date(self, value) -> date | None:
        day = iso_date(value)
        if day is None:
            return None
        self.dates[value] = None if date_problem(day, self.today) else day
        return self.dates[value]
