"""What a valid day of metrics is. Shared by POST /data and the bulk loader."""

import re
from datetime import date, timedelta
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
ID_RULE = "1 to 128 characters: letters, digits, and _ . : - (not first)"
EARLIEST_DATE = date(2000, 1, 1)
MAX_COUNT = 10**12
MAX_VARIANTS = 100

Identifier = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(description=ID_RULE, examples=["ctr_test"]),
]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]


DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # the one date format we accept


def iso_date(text) -> date | None:
    """The calendar date that YYYY-MM-DD text names, or None (another shape, no such day)."""
    if type(text) is not str or not DATE_TEXT.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def iso_date_text(value):
    """Accept only YYYY-MM-DD text (pydantic alone would also take a Unix timestamp); a
    text of that shape goes on to pydantic, whose message names what is wrong with it."""
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not DATE_TEXT.fullmatch(value):
        raise ValueError(f"expected a date written YYYY-MM-DD, got {value!r}")
    return value


IsoDate = Annotated[date, BeforeValidator(iso_date_text), Field(examples=["2025-12-22"])]

EXAMPLE = {
    "experiment_id": "ctr_test",
    "date": "2025-12-22",
    "variants": [
        {"variant_id": "control", "impressions": 1000, "clicks": 50},
        {"variant_id": "variant", "impressions": 1000, "clicks": 70},
    ],
}


class VariantCounts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant_id: Identifier
    impressions: Count
    clicks: Count

    @model_validator(mode="after")
    def clicks_within_impressions(self):
        if self.clicks > self.impressions:
            raise ValueError(
                f"clicks ({self.clicks}) must not exceed impressions ({self.impressions})"
            )
        return self


class DailyMetrics(BaseModel):
    """One experiment's counts for one day; posting the same day again replaces them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    experiment_id: Identifier
    date: IsoDate
    variants: list[VariantCounts] = Field(min_length=1, max_length=MAX_VARIANTS)

    @model_validator(mode="after")
    def variant_ids_unique(self):
        seen = set()
        for item in self.variants:
            if item.variant_id in seen:
                raise ValueError(f"variant_id {item.variant_id!r} appears more than once")
            seen.add(item.variant_id)
        return self


def date_problem(day: date, today: date) -> str | None:
    """Why a metrics date is not acceptable, or None. 'today' is in the configured zone."""
    if day < EARLIEST_DATE:
        return f"date {day} is before {EARLIEST_DATE}"
    if day > today + timedelta(days=1):
        return f"date {day} is more than one day after today ({today})"
    return None
