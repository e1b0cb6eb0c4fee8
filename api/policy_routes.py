"""Routes for the experiment lifecycle: settings, archiving, allocation history."""

import dataclasses
import re
from datetime import date

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from api.history import allocation_on, allocation_series
from api.policy_schemas import HistoryItem, SettingsIn, SettingsOut
from core.db import database, write_transaction
from core.models import Experiment, Variant
from core.settings import policy_conflict
from scheduler.policy_store import (
    load_state,
    save_overrides,
    set_experiment_archived,
    set_variant_archived,
)

router = APIRouter(tags=["lifecycle"])


def invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": "value_error"}])


def find_experiment(experiment_id: str) -> Experiment:
    experiment = Experiment.get_or_none(Experiment.name == experiment_id)
    if experiment is None:
        raise HTTPException(404, f"unknown experiment {experiment_id!r}")
    return experiment


def find_variant(experiment: Experiment, variant_id: str) -> Variant:
    variant = Variant.get_or_none((Variant.experiment == experiment) & (Variant.name == variant_id))
    if variant is None:
        raise HTTPException(404, f"unknown variant {variant_id!r} in {experiment.name!r}")
    return variant


def settings_body(experiment: Experiment, request: Request) -> dict:
    state = load_state(experiment.id, request.app.state.settings.policy)
    variants = Variant.select().where(Variant.experiment == experiment).order_by(Variant.id)
    return {
        "experiment_id": experiment.name,
        "settings": dataclasses.asdict(state.policy),
        "overrides": state.overrides,
        "archived": state.archived,
        "variants": [
            {"variant_id": v.name, "archived": v.id in state.archived_variants} for v in variants
        ],
    }


def active_arms(experiment: Experiment, request: Request) -> int:
    state = load_state(experiment.id, request.app.state.settings.policy)
    total = Variant.select().where(Variant.experiment == experiment).count()
    return total - len(state.archived_variants)


def floor_problem(floor: float, arms: int) -> str | None:
    if arms * floor >= 1:
        return (
            f"{floor} x {arms} active arms = {arms * floor:g}; the floors must sum to less than 1"
        )
    return None


@router.get("/experiments/{experiment_id}/settings", response_model=SettingsOut)
def get_settings(request: Request, experiment_id: str) -> dict:
    """The policy in effect for this experiment, which keys it overrides, and its arms."""
    with database.connection_context():
        return settings_body(find_experiment(experiment_id), request)


@router.put("/experiments/{experiment_id}/settings", response_model=SettingsOut)
def put_settings(request: Request, experiment_id: str, body: SettingsIn) -> dict:
    """Set the fields sent (null resets one to the config default); takes effect next run."""
    # Checks and writes share one write transaction (BEGIN IMMEDIATE) here and in the
    # archive routes: two concurrent requests cannot both pass a check only one may pass.
    changes = {key: getattr(body, key) for key in body.model_fields_set}
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        check_settings(experiment, request, changes)
        save_overrides(experiment.id, changes)
        return settings_body(experiment, request)


def check_settings(experiment: Experiment, request: Request, changes: dict) -> None:
    defaults = request.app.state.settings.policy
    overrides = {**load_state(experiment.id, defaults).overrides, **changes}
    policy = dataclasses.replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    conflict = policy_conflict(policy)
    if conflict:
        raise invalid("window_days" if "window_days" in changes else "discount", conflict)
    problem = floor_problem(policy.min_allocation, active_arms(experiment, request))
    if problem:
        raise invalid("min_allocation", problem)


@router.post("/experiments/{experiment_id}/archive", response_model=SettingsOut)
def archive_experiment(request: Request, experiment_id: str) -> dict:
    """End the experiment: from the next run all traffic goes to the likely best arm."""
    return experiment_archived(request, experiment_id, True)


@router.post("/experiments/{experiment_id}/unarchive", response_model=SettingsOut)
def unarchive_experiment(request: Request, experiment_id: str) -> dict:
    """Resume the experiment under its policy from the next run."""
    return experiment_archived(request, experiment_id, False)


def experiment_archived(request: Request, experiment_id: str, archived: bool) -> dict:
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        set_experiment_archived(experiment.id, archived)
        return settings_body(experiment, request)


@router.post(
    "/experiments/{experiment_id}/variants/{variant_id}/archive", response_model=SettingsOut
)
def archive_variant(request: Request, experiment_id: str, variant_id: str) -> dict:
    """Stop allocating to this arm from the next run; its data and history stay."""
    return variant_archived(request, experiment_id, variant_id, True)


@router.post(
    "/experiments/{experiment_id}/variants/{variant_id}/unarchive", response_model=SettingsOut
)
def unarchive_variant(request: Request, experiment_id: str, variant_id: str) -> dict:
    """Allocate to this arm again from the next run."""
    return variant_archived(request, experiment_id, variant_id, False)


def variant_archived(request: Request, experiment_id: str, variant_id: str, archived: bool):
    with database.connection_context(), write_transaction():
        experiment = find_experiment(experiment_id)
        variant = find_variant(experiment, variant_id)
        state = load_state(experiment.id, request.app.state.settings.policy)
        if (variant.id in state.archived_variants) != archived:
            check_arm_change(experiment, request, state, archived)
        set_variant_archived(variant, archived)
        body = settings_body(experiment, request)
    request.app.state.cache.refresh()  # after the commit, so it sees the change
    return body


def check_arm_change(experiment: Experiment, request: Request, state, archiving: bool) -> None:
    """The last active arm cannot go; an arm cannot come back if the floors would not fit."""
    arms = active_arms(experiment, request)
    if archiving and arms <= 1:
        raise invalid(
            "variant_id", "the last active arm cannot be archived; archive the experiment"
        )
    problem = None if archiving else floor_problem(state.policy.min_allocation, arms + 1)
    if problem:
        raise invalid("variant_id", f"min_allocation {problem}")


@router.get("/experiments/{experiment_id}/allocations", response_model=list[HistoryItem])
def list_allocations(experiment_id: str) -> list[dict]:
    """Every stored split, oldest first, with its reason and the run that wrote it."""
    with database.connection_context():
        return allocation_series(find_experiment(experiment_id))


def parse_day(text: str) -> date:
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        problem = f"expected a real calendar date written YYYY-MM-DD, got {text!r}"
        raise RequestValidationError(
            [{"loc": ("query", "date"), "msg": problem, "type": "value_error"}]
        ) from None


def allocation_on_day(experiment_id: str, day: date) -> bytes:
    with database.connection_context():
        body = allocation_on(find_experiment(experiment_id), day)
    if body is None:
        raise HTTPException(404, f"no allocation was in force for {experiment_id!r} on {day}")
    return body


async def allocation_history_response(experiment_id: str, text: str) -> Response:
    """GET /allocation with a date: reads the database (in the threadpool)."""
    body = await run_in_threadpool(allocation_on_day, experiment_id, parse_day(text))
    return Response(body, media_type="application/json")
