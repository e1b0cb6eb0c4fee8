"""What the web processes serve: every changed experiment's GET /allocation body, read in
two queries from one snapshot (a third when some experiment has no split yet) and encoded
without a model or a dict per row; the arms, which only GET /allocations needs, are read
in the same snapshot after the cache has swapped the bodies in.

A publish of 200,000 experiments must reach the cache within about a second, so this path
reads raw rows (peewee builds the SQL; the driver's values are used as they come, with no
per-value converter) and writes the JSON by hand. The bytes are the same as
core.splits.computed_body's (a test compares them); ids are restricted to characters that
need no escaping, but every string goes through the json module's own escaper anyway.
"""

from itertools import groupby
from json.encoder import encode_basestring_ascii as quoted
from operator import itemgetter

from peewee import JOIN, fn

from core.assign import assignment_json
from core.db import database, read_transaction
from core.policy import equal_split
from core.schema import Allocation, AllocationReason, ArchivedVariant, Experiment, Run, Variant
from core.splits import LEGACY_REASON, placeholder_body


def latest_day():
    """The outer query's experiment's latest effective date with a split: evaluated once
    per experiment, one index lookup each (not once per row of the whole history)."""
    inner = Allocation.alias()
    return (
        inner.select(fn.MAX(inner.effective_date))
        .where(inner.experiment == Experiment.id)
        .order_by()
    )


def on_latest_day(model):
    """The join condition: `model`'s rows of the outer experiment on its latest split's day
    (a reason is the one of the day served, as in core.splits, never an older day's)."""
    return (model.experiment == Experiment.id) & (model.effective_date == latest_day())


def split_rows(version: int):
    """(experiment pk, name, day, variant, percentage, probability, run, published) of
    each changed experiment's latest day, in split order; one row of NULLs after the name
    for an experiment without a split."""
    published = fn.COALESCE(Run.finished_at, Allocation.created_at)
    return (
        Experiment.select(
            Experiment.id,
            Experiment.name,
            Allocation.effective_date,
            Variant.name,
            Allocation.percentage,
            Allocation.probability,
            Allocation.run,
            published,
        )
        # LEFT JOIN: SQLite keeps experiment as the outer loop, so the history of
        # allocation rows is never scanned (an inner join let it pick the other order),
        # and an experiment with no split yet shows, without a query of its own.
        .join(Allocation, JOIN.LEFT_OUTER, on=on_latest_day(Allocation))
        .join(Variant, JOIN.LEFT_OUTER, on=(Allocation.variant == Variant.id))
        .join(Run, JOIN.LEFT_OUTER, on=(Allocation.run == Run.id))
        .where(Experiment.version > version)
        .order_by(Experiment.id, Allocation.variant)
    )


def reason_rows(version: int):
    return (
        Experiment.select(
            Experiment.id,
            AllocationReason.reason,
            AllocationReason.explanation,
            AllocationReason.buckets,
        )
        .join(AllocationReason, JOIN.CROSS)  # experiment outside, as in split_rows
        .where(on_latest_day(AllocationReason) & (Experiment.version > version))
    )


def placeholder_rows(version: int):
    """(experiment name, active variant) of changed experiments that have no split yet."""
    return (
        Variant.select(Experiment.name, Variant.name)
        .join(Experiment)
        .where(Experiment.version > version)
        .where(~fn.EXISTS(Allocation.select().where(Allocation.experiment == Experiment.id)))
        .where(Variant.id.not_in(ArchivedVariant.select(ArchivedVariant.variant)))
        .order_by(Variant.experiment, Variant.id)
    )


def arm_rows(version: int):
    """(experiment name, variant) of every arm of the changed experiments, archived ones
    too, in the order they joined: the stable arm order of the assignment."""
    return (
        Variant.select(Experiment.name, Variant.name)
        .join(Experiment)
        .where(Experiment.version > version)
        .order_by(Variant.experiment, Variant.id)
    )


def raw(query):
    """The driver's rows as they come: no peewee converter per value."""
    return database.execute(query)


class Encoder:
    """Writes split bodies; the reason and time fragments repeat across a run's
    experiments, so each is encoded once."""

    def __init__(self, reasons: dict):
        self.reasons = reasons
        self.fragments: dict = {}
        self.shares: dict[str, dict[str, float]] = {}  # experiment -> variant -> percentage
        self.owned: dict[str, tuple] = {}  # experiment -> (stored ownership, its day)

    def reason(self, experiment_pk) -> str:
        reason, explanation, _ = self.reasons.get(experiment_pk, LEGACY_REASON_ROW)
        key = ("reason", reason, explanation)
        if key not in self.fragments:
            self.fragments[key] = f'"reason":{quoted(reason)},"explanation":{quoted(explanation)}'
        return self.fragments[key]

    def tail(self, run_id, published: str) -> str:
        key = ("tail", run_id, published)
        if key not in self.fragments:
            # Stored as isoformat(" ") by sqlite3's adapter; served as pydantic writes UTC.
            at = quoted(published.replace(" ", "T", 1) + "Z")
            self.fragments[key] = f'"computed_at":{at},"run_id":{run_id},'
        return self.fragments[key]

    def body(self, rows: list) -> bytes:
        pk, name, day, _, _, _, run_id, published = rows[0]
        self.shares[name] = {v: p for _, _, _, v, p, _, _, _ in rows}
        self.owned[name] = (self.reasons.get(pk, LEGACY_REASON_ROW)[2], day)
        arms = ",".join(
            f'{{"variant_id":{quoted(v)},"percentage":{p!r},"probability":{q!r}}}'
            for _, _, _, v, p, q, _, _ in rows
        )
        return (
            f'{{"experiment_id":{quoted(name)},"date":{quoted(day)},"status":"computed",'
            f'"allocations":[{arms}],{self.tail(run_id, published)}{self.reason(pk)}}}'
        ).encode()


LEGACY_REASON_ROW = (LEGACY_REASON["reason"], LEGACY_REASON["explanation"], None)


def latest_version() -> int:
    return Experiment.select(fn.COALESCE(fn.MAX(Experiment.version), -1)).scalar()


class Changed:
    """What changed after a version, read in one transaction. Bodies are encoded on first
    use (body()), so that a publish reaches GET /allocation as soon as its rows are read;
    the cache encodes the rest, and the GET /allocations items, right after its swap
    (without the database: everything was read here)."""

    def __init__(self, splits: dict, placeholders: dict, reasons: dict, version):
        self.splits = splits  # experiment -> its latest day's rows (split_rows)
        self.placeholders = placeholders  # experiment -> active variants (no split yet)
        self.arms: dict[str, list[str]] = {}  # experiment -> every arm, in joining order
        self.encoder = Encoder(reasons)
        self.version = version

    def names(self) -> list[str]:
        return [*self.splits, *self.placeholders]

    def body(self, name: str) -> bytes | None:
        rows = self.splits.get(name)
        if rows is not None:
            return self.encoder.body(rows)
        variants = self.placeholders.get(name)
        if not variants:
            return None
        self.encoder.shares[name] = dict(zip(variants, equal_split(len(variants)), strict=True))
        return placeholder_body(name, variants)

    def bodies(self) -> dict[str, bytes]:
        return {name: self.body(name) for name in self.names()}

    def items(self, bodies: dict[str, bytes]) -> dict[str, bytes]:
        """Each changed body with its "assignment" member added (call after bodies())."""
        items = {}
        for name, arms in self.arms.items():
            if name in self.encoder.shares and name in bodies:
                stored, day = self.encoder.owned.get(name, (None, ""))
                member = assignment_json(arms, self.encoder.shares[name], stored, day)
                items[name] = bodies[name][:-1] + b',"assignment":' + member.encode() + b"}"
        return items


def split_groups(rows) -> tuple[dict[str, list], bool]:
    """split_rows by experiment name, and whether some experiment had no split."""
    splits, unsplit = {}, False
    for _, group in groupby(rows, key=itemgetter(0)):
        found = list(group)
        if found[0][2] is None:
            unsplit = True
        else:
            splits[found[0][1]] = found
    return splits, unsplit


def bodies_since(version: int, swap=None) -> Changed:
    """Every experiment whose split changed after `version`, and the newest version among
    them, from one consistent snapshot. The bodies' rows are read first; swap(changed),
    if given, is called with them inside the snapshot, and the arms (which only the
    GET /allocations items need) are read after it, unless it returns False."""
    with read_transaction():
        newest = latest_version()
        changed = bodies_read(version, newest) if newest > version else Changed({}, {}, {}, version)
        if swap is None or swap(changed) is not False:
            changed.arms = variants_by_name(arm_rows(version))
    return changed


def bodies_read(version: int, newest: int) -> Changed:
    reasons = {pk: (r, e, b) for pk, r, e, b in raw(reason_rows(version))}
    splits, unsplit = split_groups(raw(split_rows(version)))
    placeholders = variants_by_name(placeholder_rows(version)) if unsplit else {}
    return Changed(splits, placeholders, reasons, newest)


def variants_by_name(query) -> dict[str, list[str]]:
    return {name: [v for _, v in rows] for name, rows in groupby(raw(query), key=itemgetter(0))}
