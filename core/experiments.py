"""Experiments in the database: lookup, per-experiment policy state (settings overrides
and archived arms), and the writes that change it.

A stored NULL means "the config default", so changing config.toml moves every experiment
that has not chosen its own value.
"""

import dataclasses
from dataclasses import dataclass, field

from peewee import chunked

from core.changes import mark_changed
from core.db import write_transaction
from core.schema import POLICY_KEYS, ArchivedVariant, Experiment, ExperimentPolicy, Variant, utcnow
from core.settings import PolicySettings, policy_conflict

LOOKUP_BATCH = 500  # keys per SELECT ... IN (...)


class UnknownExperiment(LookupError):
    """No experiment (or no variant in it) has this name; the message names it."""


class InvalidChange(ValueError):
    """A change that would leave an experiment in a state it cannot be in; names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def find_experiment(name: str) -> Experiment:
    experiment = Experiment.get_or_none(Experiment.name == name)
    if experiment is None:
        raise UnknownExperiment(f"unknown experiment {name!r}")
    return experiment


def find_variant(experiment: Experiment, name: str) -> Variant:
    variant = Variant.get_or_none((Variant.experiment == experiment) & (Variant.name == name))
    if variant is None:
        raise UnknownExperiment(f"unknown variant {name!r} in {experiment.name!r}")
    return variant


def experiment_exists(name: str) -> bool:
    return Experiment.select().where(Experiment.name == name).exists()


@dataclass(frozen=True)
class PolicyState:
    policy: PolicySettings
    overrides: dict = field(default_factory=dict)
    archived: bool = False
    archived_variants: frozenset = frozenset()  # variant primary keys


def overrides_of(row: ExperimentPolicy | None) -> dict:
    if row is None:
        return {}
    return {k: getattr(row, k) for k in POLICY_KEYS if getattr(row, k) is not None}


def state_of(row, archived_variants, defaults: PolicySettings) -> PolicyState:
    overrides = overrides_of(row)
    policy = dataclasses.replace(defaults, **overrides)
    archived = row is not None and row.archived_at is not None
    return PolicyState(policy, overrides, archived, frozenset(archived_variants))


def load_states(experiment_pks: list[int], defaults: PolicySettings) -> dict[int, PolicyState]:
    """Effective policy for each experiment: two queries however many experiments."""
    rows = {r.experiment_id: r for r in in_chunks(ExperimentPolicy, experiment_pks)}
    archived: dict[int, set] = {}
    for row in in_chunks(ArchivedVariant, experiment_pks):
        archived.setdefault(row.experiment_id, set()).add(row.variant_id)
    plain = PolicyState(defaults)  # most experiments: shared, since a state is immutable
    return {
        pk: state_of(rows.get(pk), archived.get(pk, ()), defaults)
        if pk in rows or pk in archived
        else plain
        for pk in experiment_pks
    }


def in_chunks(model, experiment_pks: list[int]) -> list:
    found = []
    for chunk in chunked(experiment_pks, LOOKUP_BATCH):
        found.extend(model.select().where(model.experiment.in_(chunk)))
    return found


def load_state(experiment_pk: int, defaults: PolicySettings) -> PolicyState:
    return load_states([experiment_pk], defaults)[experiment_pk]


def save_overrides(experiment_pk: int, changes: dict) -> None:
    """Set the given keys (None resets a key to the config default)."""
    with write_transaction():
        row = policy_row(experiment_pk)
        for key, value in changes.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        row.save()


def policy_row(experiment_pk: int) -> ExperimentPolicy:
    """The experiment's settings row, created empty on first use (call in a transaction)."""
    row = ExperimentPolicy.get_or_none(ExperimentPolicy.experiment == experiment_pk)
    return row or ExperimentPolicy.create(experiment=experiment_pk)


def set_experiment_archived(experiment_pk: int, archived: bool) -> None:
    with write_transaction():
        row = policy_row(experiment_pk)
        if archived != (row.archived_at is not None):
            row.archived_at = utcnow() if archived else None
            row.save()


def set_variant_archived(variant: Variant, archived: bool) -> None:
    with write_transaction():
        if archived:
            (
                ArchivedVariant.insert(variant=variant.id, experiment=variant.experiment_id)
                .on_conflict_ignore()
                .execute()
            )
        else:
            ArchivedVariant.delete().where(ArchivedVariant.variant == variant.id).execute()
        # The equal split served before the first run lists only active arms.
        mark_changed([variant.experiment_id])


def active_arms(experiment: Experiment, state: PolicyState) -> int:
    total = Variant.select().where(Variant.experiment == experiment).count()
    return total - len(state.archived_variants)


def arm_cap_problem(experiment: str, arms: int, cap: int | None) -> str | None:
    """Why an experiment may not have this many active arms: the job and the report draw
    samples x arms numbers for it, so the cap bounds their memory."""
    if cap is None or arms <= cap:
        return None
    return (
        f"experiment {experiment!r} would have {arms} active arms, more than"
        f" sampling.max_active_arms ({cap}); archive arms it no longer needs first"
    )


def floor_problem(floor: float, arms: int) -> str | None:
    if arms * floor >= 1:
        return (
            f"{floor} x {arms} active arms = {arms * floor:g}; the floors must sum to less than 1"
        )
    return None


def change_settings(experiment: Experiment, changes: dict, defaults: PolicySettings) -> None:
    """Check and save settings overrides (None resets a key); call in a write transaction,
    so that two concurrent changes cannot both pass a check only one may pass."""
    state = load_state(experiment.id, defaults)
    overrides = {**state.overrides, **changes}
    policy = dataclasses.replace(defaults, **{k: v for k, v in overrides.items() if v is not None})
    conflict = policy_conflict(policy)
    if conflict:
        raise InvalidChange("window_days" if "window_days" in changes else "discount", conflict)
    problem = floor_problem(policy.min_allocation, active_arms(experiment, state))
    if problem:
        raise InvalidChange("min_allocation", problem)
    save_overrides(experiment.id, changes)


def change_variant_archived(
    experiment: Experiment,
    variant: Variant,
    archived: bool,
    defaults: PolicySettings,
    max_arms: int | None = None,
) -> None:
    """Archive or restore an arm; call in a write transaction. The last active arm cannot
    go, and an arm cannot come back if the floors would not fit or the arms' cap is met."""
    state = load_state(experiment.id, defaults)
    if (variant.id in state.archived_variants) != archived:
        arms = active_arms(experiment, state)
        if archived and arms <= 1:
            raise InvalidChange(
                "variant_id", "the last active arm cannot be archived; archive the experiment"
            )
        if not archived:
            restore_problem(experiment, state, arms + 1, max_arms)
    set_variant_archived(variant, archived)


def restore_problem(experiment: Experiment, state: PolicyState, arms: int, cap) -> None:
    problem = floor_problem(state.policy.min_allocation, arms)
    if problem:
        raise InvalidChange("variant_id", f"min_allocation {problem}")
    problem = arm_cap_problem(experiment.name, arms, cap)
    if problem:
        raise InvalidChange("variant_id", problem)


def settings_view(experiment: Experiment, defaults: PolicySettings) -> dict:
    """The policy in effect, the keys the experiment overrides, and its arms."""
    state = load_state(experiment.id, defaults)
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
