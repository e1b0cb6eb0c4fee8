"""Response models of the series, posted metrics and outlook endpoints (api/experiments.py)."""

import datetime as dt

from pydantic import BaseModel, Field

from api.schemas import REASON_HELP


class MetricRowOut(BaseModel):
    date: dt.date
    variant_id: str
    impressions: int
    clicks: int
    updated_at: dt.datetime = Field(description="when this row was last posted")


class SeriesArm(BaseModel):
    variant_id: str
    joined: dt.date = Field(description="its first day of data")
    archived_from: dt.date | None = Field(description="the local day it was archived on")


class SeriesSplit(BaseModel):
    date: dt.date = Field(description="the effective date of the split routers were served")
    run_id: int
    trigger: str | None
    reason: str = Field(description=REASON_HELP)
    explanation: str
    served_from: dt.datetime
    from_start: bool = Field(description="in force when the day began (else published during it)")
    whole_day: bool = Field(description="the only split served that day")


class SeriesArmDay(BaseModel):
    variant_id: str
    impressions: int = Field(description="posted for this day")
    clicks: int
    cumulative_impressions: int = Field(description="every day up to this one")
    cumulative_clicks: int
    counted_impressions: float = Field(
        description="as the policy counts them on this day (window or discount in effect now)"
    )
    counted_clicks: float
    rate: float = Field(description="posterior mean of the counted totals")
    interval_95: tuple[float, float] = Field(description="95% credible interval of the rate")
    probability_best: float | None = Field(
        description="P(best) on this day's counted totals among the arms active that day"
        " (numerical integration); null for an arm archived by then"
    )
    share: float | None = Field(description="its share of the split served that day")
    active: bool = Field(description="not archived by this day")


class SeriesDay(BaseModel):
    date: dt.date
    split: SeriesSplit | None = Field(description="null: no published split was served")
    arms: list[SeriesArmDay] = Field(description="the arms that had joined by this day")


class SeriesOut(BaseModel):
    experiment_id: str
    arms: list[SeriesArm]
    days: list[SeriesDay] = Field(description="first to last day of data, one per day")


class Quantiles(BaseModel):
    low: float = Field(description="5% of the simulated futures")
    median: float
    high: float = Field(description="95%; past the horizon: horizon_days + 1")


class GainOut(BaseModel):
    low: float = Field(description="5% of the simulated futures")
    mean: float
    high: float = Field(description="95%")


class OutlookOut(BaseModel):
    declared_now: bool = Field(description="a winner is declared on the data so far")
    clicks_gained_so_far: float = Field(description="as value_delivered of GET /experiments/{id}")
    days_so_far: int
    from_day: dt.date | None = Field(description="the last day of data: the futures start after it")
    daily_impressions: int | None = Field(description="mean of the last 7 days of data")
    days_to_winner: Quantiles | None = Field(
        description="days after from_day until a run declares a winner; null when fewer than"
        " half of the futures declare one within horizon_days (unlikely)"
    )
    declared_share: float | None = Field(description="share of futures that declare one")
    clicks_gained_next: GainOut | None = Field(
        description="expected clicks over an equal split in the next gain_days days"
    )
    gain_days: int
    simulations: int | None
    horizon_days: int | None
    sentences: list[str] = Field(description="the outlook in plain words, as the page shows it")
