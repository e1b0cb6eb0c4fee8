"""Request and response models for settings, archiving, history and experiment insights."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from core.settings import POLICY_RULES

REASON_HELP = (
    "why the split is what it is: thompson, floor_applied, exploration, gate_not_met, "
    "winner_rollout, experiment_archived (or not_computed before the first run)"
)


def rule(key: str) -> str:
    return POLICY_RULES[key][1]


class PolicyOut(BaseModel):
    min_allocation: float
    min_impressions: int
    exploration_days: int
    winner_probability: float
    value_remaining: float
    auto_rollout: bool
    window_days: int
    discount: float
    method: str


class SettingsIn(BaseModel):
    """Fields sent are set; null resets a field to the config default; others are kept."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"min_allocation": 0.05, "min_impressions": 1000}]},
    )

    min_allocation: Annotated[StrictFloat, Field(ge=0, lt=1)] | None = None
    min_impressions: Annotated[StrictInt, Field(ge=0, le=10**12)] | None = None
    exploration_days: Annotated[StrictInt, Field(ge=0, le=3650)] | None = None
    winner_probability: Annotated[StrictFloat, Field(ge=0.5, le=1)] | None = None
    value_remaining: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    auto_rollout: StrictBool | None = None
    window_days: Annotated[StrictInt, Field(ge=0, le=3650)] | None = None
    discount: Annotated[StrictFloat, Field(gt=0, le=1)] | None = None
    method: Literal["monte_carlo", "exact"] | None = None


class VariantState(BaseModel):
    variant_id: str
    archived: bool


class SettingsOut(BaseModel):
    experiment_id: str
    settings: PolicyOut = Field(description="in effect: overrides, else config defaults")
    overrides: dict = Field(description="the keys this experiment sets itself")
    archived: bool
    variants: list[VariantState]


class HistoryAllocation(BaseModel):
    variant_id: str
    percentage: float
    probability: float


class HistoryItem(BaseModel):
    date: dt.date
    run_id: int
    trigger: str | None = Field(description="nightly, catch_up or manual")
    reason: str = Field(description=REASON_HELP)
    explanation: str
    allocations: list[HistoryAllocation]


class WinnerOut(BaseModel):
    declared: bool
    variant_id: str | None = Field(description="the winner, when declared")
    leader: str | None = Field(description="the arm most likely to be best")
    probability_best: float | None
    value_remaining: float | None = Field(
        description="95th percentile of (best - leader) / leader over the draws"
    )
    winner_probability: float
    value_remaining_threshold: float


class SrmDay(BaseModel):
    date: dt.date
    chi_square: float
    degrees_of_freedom: int
    p_value: float
    flagged: bool


class SampleRatioOut(BaseModel):
    threshold: float
    checked_days: int
    suspect: bool = Field(description="some day has p below the threshold: check the router")
    flagged_days: list[SrmDay]
    latest: SrmDay | None


class ValueDeliveredOut(BaseModel):
    clicks_gained: float = Field(description="expected clicks over an equal split, so far")
    days: int
