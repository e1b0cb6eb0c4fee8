"""Per-experiment policy state in the database: settings overrides and archived arms.

A stored NULL means "the config default", so changing config.toml moves every experiment
that has not chosen its own value.
"""

import dataclasses
from dataclasses import dataclass, field

from core.db import write_transaction
from core.models import Variant, utcnow
from core.policy_models import POLICY_KEYS, ArchivedVariant, ExperimentPolicy
from core.serving import mark_changed
from core.settings import PolicySettings


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


def in_chunks(model, experiment_pks: list[int], size: int = 500) -> list:
    found = []
    for start in range(0, len(experiment_pks), size):
        chunk = experiment_pks[start : start + size]
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
