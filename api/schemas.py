"""Response and request models: they document the API in /docs and validate slow paths."""

import datetime as dt
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    create_model,
)

from core.policy import NOT_COMPUTED, REASONS, THOMPSON_TEXT
from core.settings import POLICY
from ingest.validation import Identifier

REASON_HELP = (
    f"why the split is what it is: {', '.join(REASONS)} (or {NOT_COMPUTED} before the first run)"
)


class FieldError(BaseModel):
    field: str = Field(description="the field at fault, dotted (variants.0.clicks), or body")
    message: str


class ErrorOut(BaseModel):
    error: str = Field(
        description="not_found, invalid_request, unauthorized, too_large, busy, ...",
        examples=["not_found"],
    )
    message: str = Field(examples=["unknown experiment 'ctr_test'"])
    errors: list[FieldError] | None = Field(
        default=None, description="422 only: each problem found, with its field"
    )


class AllocationItem(BaseModel):
    variant_id: str
    percentage: float = Field(description="share of traffic, one decimal; all sum to 100.0")
    probability: float | None = Field(description="P(arm is best); null if not computed")


class AllocationOut(BaseModel):
    experiment_id: str
    date: dt.date | None = Field(description="the day this split is for; null if not computed")
    status: str = Field(description="computed, or not_computed (an equal split)")
    allocations: list[AllocationItem]
    computed_at: dt.datetime | None = Field(
        default=None,
        description="when the split was published: routers are served it from then on",
    )
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


class AllocationsOut(BaseModel):
    experiments: list[AllocationOut] = Field(
        description="every served split, as GET /allocation gives it, sorted by experiment_id"
    )


class AssignOut(BaseModel):
    experiment_id: str
    unit_id: str
    variant_id: str = Field(description="the arm this unit is assigned to")
    bucket: int = Field(description="the unit's bucket, 0 to 9999 (see the Router guide)")
    seed: str = Field(description="the seed hashed with the unit")


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


STRICT = {bool: StrictBool, int: StrictInt, float: StrictFloat, str: StrictStr}


def checked(setting):
    """The key's strict type, then the key's own check from the settings table, so that a
    value is refused in the same words as in config.toml (and the schema shows its range)."""

    def refuse_bad(value):
        refusal = setting.refusal(value)
        if refusal:
            raise ValueError(refusal)
        return value

    schema = setting.check.json_schema() if hasattr(setting.check, "json_schema") else {}
    return Annotated[
        STRICT[setting.kind], Field(json_schema_extra=schema), AfterValidator(refuse_bad)
    ]


PolicyOut = create_model("PolicyOut", **{s.key: (s.kind, ...) for s in POLICY})

SettingsIn = create_model(
    "SettingsIn",
    __doc__="Fields sent are set; null resets a field to the config default; others are kept.",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"min_allocation": 0.05, "min_impressions": 1000}]},
    ),
    **{s.key: (checked(s) | None, None) for s in POLICY},
)


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
    served_from: dt.datetime = Field(
        description="when it was published, and so first served (a manual recompute's split"
        " for tomorrow is served at once); a republish of the same date replaces the row"
    )
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
    chi_square: float = Field(
        description="Pearson's statistic of the day's impressions against the split (arms at"
        " 0% left out): how far off it is; the p-value is exact, not read from it"
    )
    degrees_of_freedom: int = Field(description="arms - 1")
    p_value: float = Field(
        description="exact: each arm's two-sided binomial p-value (twice its smaller tail),"
        " the smallest times the number of arms (Bonferroni; with two arms, as it is)"
    )
    flagged: bool = Field(description="p_value below the threshold")


class SampleRatioOut(BaseModel):
    threshold: float
    checked_days: int = Field(
        description="days of data with one published split served all day (a day the split"
        " changed, by a recompute or the first split, follows a mix and is not checked)"
    )
    suspect: bool = Field(description="some day has p below the threshold: check the router")
    flagged_days: list[SrmDay]
    latest: SrmDay | None


class ValueDeliveredOut(BaseModel):
    clicks_gained: float = Field(
        description="expected clicks over an equal split of the same impressions, so far:"
        " from the impressions each arm was served, not the planned shares, so it stays"
        " right when routers did not follow the split"
    )
    days: int = Field(description="days of data begun under a published split")


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


class RunDetail(BaseModel):
    run_id: int
    trigger: str = Field(description="nightly, catch_up or manual")
    effective_date: dt.date = Field(description="the day the run computes the split for")
    experiment_id: str | None = Field(description="the one experiment it ran for; null: all")
    scheduled_for: dt.datetime | None = Field(description="the nightly fire time it is for")
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_seconds: float | None
    status: str = Field(description="running, success, failed or cancelled")
    experiments_processed: int
    phase_seconds: dict[str, float] | None = Field(
        description="compute, staging and publish_lock (how long the write lock was held),"
        " for a successful run"
    )
    error: str | None


class HealthOut(BaseModel):
    status: str = Field(description="ok, degraded (see reasons) or error (database unreachable)")
    database: str
    last_nightly_success: dt.datetime | None
    experiments_cached: int
    auth: str = Field(
        description="off (no BANDIT_AUTH_API_KEYS), writes, or reads_and_writes: what needs a key"
    )
    warnings: list[str] = Field(description="configuration an operator should fix")
    reasons: list[str] = Field(
        default=[],
        description="why the status is degraded, each naming its cause: a failed or stale"
        " nightly run, or writes failing (disk full, read-only, corrupt or replaced file)",
    )
    last_scheduled_run: RunDetail | None = Field(
        default=None, description="the newest nightly or catch-up run that has ended"
    )


class ReadyOut(BaseModel):
    status: str = Field(description="ready, or not_ready (503) with the problems")
    problems: list[str] = Field(description="empty when ready")


class LiveOut(BaseModel):
    status: str = Field(examples=["alive"])
