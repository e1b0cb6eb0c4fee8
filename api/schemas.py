"""Response and request models: they document the API in /docs and validate slow paths."""

import datetime as dt

from pydantic import BaseModel, Field

from api.policy_schemas import (
    REASON_HELP,
    PolicyOut,
    SampleRatioOut,
    ValueDeliveredOut,
    WinnerOut,
)
from ingest.validation import Identifier
from scheduler.policy import THOMPSON_TEXT


class ErrorOut(BaseModel):
    error: str = Field(examples=["not_found"])
    message: str = Field(examples=["unknown experiment 'ctr_test'"])


class AllocationItem(BaseModel):
    variant_id: str
    percentage: float = Field(description="share of traffic, one decimal; all sum to 100.0")
    probability: float | None = Field(description="P(arm is best); null if not computed")


class AllocationOut(BaseModel):
    experiment_id: str
    date: dt.date | None = Field(description="the day this split is for; null if not computed")
    status: str = Field(description="computed, or not_computed (an equal split)")
    allocations: list[AllocationItem]
    computed_at: dt.datetime | None = None
    run_id: int | None = None
    reason: str = Field(description=REASON_HELP)
    explanation: str = Field(description="the reason as a sentence")

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "experiment_id": "ctr_test",
                    "date": "2025-12-23",
                    "status": "computed",
                    "allocations": [
                        {"variant_id": "control", "percentage": 3.0, "probability": 0.0302},
                        {"variant_id": "variant", "percentage": 97.0, "probability": 0.9698},
                    ],
                    "computed_at": "2025-12-22T23:50:01Z",
                    "run_id": 1,
                    "reason": "thompson",
                    "explanation": THOMPSON_TEXT,
                }
            ]
        }
    }


class StoredOut(BaseModel):
    experiment_id: str
    date: dt.date
    variants_stored: int
    new_variants: list[str]


class RecomputeIn(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"experiment_id": "ctr_test"}, {}]},
    }

    experiment_id: Identifier | None = Field(default=None, description="omit for all")


class RunOut(BaseModel):
    run_id: int
    trigger: str
    effective_date: dt.date
    status: str
    experiments_processed: int
    error: str | None = None


class VariantStats(BaseModel):
    variant_id: str
    impressions: int
    clicks: int
    posterior_mean: float
    credible_interval_95: tuple[float, float]
    probability_best: float | None = Field(description="among active arms; null if archived")
    archived: bool


class LatestAllocation(BaseModel):
    date: dt.date
    run_id: int
    reason: str = Field(description=REASON_HELP)
    explanation: str
    allocations: list[AllocationItem]


class ExperimentSummary(BaseModel):
    experiment_id: str
    created_at: dt.datetime
    variants: int
    latest_allocation_date: dt.date | None


class ExperimentDetail(BaseModel):
    experiment_id: str
    created_at: dt.datetime
    archived: bool
    variants: list[VariantStats]
    latest_allocation: LatestAllocation | None
    winner: WinnerOut
    sample_ratio: SampleRatioOut
    value_delivered: ValueDeliveredOut
    settings: PolicyOut


class HealthOut(BaseModel):
    status: str
    database: str
    last_nightly_success: dt.datetime | None
    experiments_cached: int
    auth: str = Field(
        description="off (no BANDIT_AUTH_API_KEYS), writes, or reads_and_writes: what needs a key"
    )
    warnings: list[str] = Field(description="configuration an operator should fix")
