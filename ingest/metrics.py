"""Upsert daily metrics: one row per (experiment, date, variant); a repost replaces it.

The same code stores one POST (a few rows) and a bulk load (a million), so it works in
sets: experiment and variant ids are looked up (and missing ones created) with one query
per few hundred names. A POST's rows go through one prepared upsert (executemany) rather
than SQL built per row; a bulk load's rows, staged in a table (ingest/staging.py), go
through one INSERT ... SELECT.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from peewee import EXCLUDED, IntegrityError, fn

from core.changes import mark_changed
from core.db import (
    bound,
    database,
    execute_many,
    lock_rows,
    one_of,
    plain_inserts_pay,
    prepared,
    slices,
)
from core.experiments import InvalidChange, arm_cap_problem
from core.schema import ArchivedVariant, DailyMetric, Experiment, Variant, utcnow
from ingest.group_commit import GroupCommit, Known

WRITES = GroupCommit()  # shared by every thread of this process
LOOKUP_BATCH = 500  # names per SELECT ... IN (...)
UPSERT_BATCH = 50_000  # rows converted to parameters at a time, to bound memory
JOINT_BATCH = 500  # rows per statement of a group's joint upsert (6 parameters each)
UPSERT_FIELDS = [
    DailyMetric.experiment,
    DailyMetric.variant,
    DailyMetric.date,
    DailyMetric.impressions,
    DailyMetric.clicks,
    DailyMetric.updated_at,
]


@dataclass
class StoreResult:
    rows: int = 0
    new_experiments: list[str] = field(default_factory=list)
    new_variants: list[tuple[str, str]] = field(default_factory=list)


class MetricRow(NamedTuple):
    experiment_id: str
    date: date
    variant_id: str
    impressions: int
    clicks: int


def rows_of(batch) -> list[MetricRow]:
    """Flatten a validated DailyMetrics into rows."""
    return [
        MetricRow(batch.experiment_id, batch.date, v.variant_id, v.impressions, v.clicks)
        for v in batch.variants
    ]


def experiments_named(count: int):
    return Experiment.select(Experiment.name, Experiment.id).where(
        Experiment.name.in_([""] * count)
    )


def variants_of(count: int):
    return Variant.select(Variant.experiment, Variant.name, Variant.id).where(
        Variant.experiment.in_([0] * count)
    )


def experiment_ids(names: list[str]) -> dict[str, int]:
    found = {}
    for batch in slices(names, LOOKUP_BATCH):
        found.update(database.execute_sql(prepared(experiments_named, len(batch)), batch))
    return found


def variant_ids(experiment_pks: list[int]) -> dict[tuple[int, str], int]:
    found = {}
    for batch in slices(experiment_pks, LOOKUP_BATCH):
        rows = database.execute_sql(prepared(variants_of, len(batch)), batch)
        found.update(((exp_pk, name), pk) for exp_pk, name, pk in rows)
    return found


def counts_by_experiment(model, experiment_pks: list[int]) -> dict[int, int]:
    found = {}
    for batch in slices(experiment_pks, LOOKUP_BATCH):
        query = (
            model.select(model.experiment, fn.COUNT(model.id))
            .where(model.experiment.in_(batch))
            .group_by(model.experiment)
        )
        found.update(query.tuples())
    return found


def active_arm_counts(experiment_pks: list[int]) -> dict[int, int]:
    """Variants not archived, per experiment."""
    variants = counts_by_experiment(Variant, experiment_pks)
    archived = counts_by_experiment(ArchivedVariant, experiment_pks)
    return {pk: variants.get(pk, 0) - archived.get(pk, 0) for pk in experiment_pks}


class MetricWriter:
    """Resolves experiment and variant ids for a set of rows, then upserts the rows.

    With `known` (the group commit's, ingest/group_commit.py) it looks up only the names
    whose ids no committed write of this connection has seen. That is sound because an id,
    once committed, stays the name's for the life of the database: nothing deletes or
    renames an experiment or a variant (archiving is a row of its own;
    tests/test_group_commit.py checks the code for such statements)."""

    def __init__(self, max_arms: int | None = None, known: Known | None = None):
        self.experiment_ids: dict[str, int] = {}
        self.variant_ids: dict[tuple[int, str], int] = {}
        self.result = StoreResult()
        self.max_arms = max_arms  # sampling.max_active_arms; None: no cap
        self.known = known

    def resolve(self, pairs: list[tuple[str, str]]) -> None:
        """Ids of these (experiment, variant) names, in order of first appearance: the
        missing ones are created in that order (variant ids give the arms' order in a
        split)."""
        self.resolve_experiments(list(dict.fromkeys(e for e, _ in pairs)))
        self.resolve_variants(pairs)

    def resolve_experiments(self, names: list[str]) -> None:
        # Race free on both engines: a writer on another host may create the same name
        # meanwhile (PostgreSQL takes no lock for ingest), and ON CONFLICT DO NOTHING then
        # waits for its commit and leaves its row, which the select after it finds.
        known = self.known_of(names, "experiment")
        unknown = [n for n in names if n not in known]
        self.experiment_ids = {**known, **experiment_ids(unknown)} if unknown else known
        missing = [n for n in names if n not in self.experiment_ids]
        if missing:
            insert = Experiment.insert(name=missing[0]).on_conflict_ignore()
            execute_many(insert, [(n,) for n in missing])
            self.experiment_ids.update(experiment_ids(missing))
            self.result.new_experiments = missing
        self.learn("experiment", unknown, self.experiment_ids)

    def resolve_variants(self, pairs: list[tuple[str, str]]) -> None:
        keys = [(self.experiment_ids[e], v) for e, v in pairs]
        self.variant_ids = self.known_of(keys, "variant")
        unknown = sorted({pk for pk, name in keys if (pk, name) not in self.variant_ids})
        if unknown:
            self.variant_ids.update(variant_ids(unknown))
        missing = [p for p in pairs if (self.experiment_ids[p[0]], p[1]) not in self.variant_ids]
        if missing:
            values = [(self.experiment_ids[e], v) for e, v in missing]
            # New arms count against the cap: one writer at a time per experiment.
            lock_rows(Experiment, sorted({pk for pk, _ in values}))
            insert = Variant.insert(experiment=values[0][0], name=values[0][1])
            execute_many(insert.on_conflict_ignore(), values)
            self.variant_ids.update(variant_ids(sorted({pk for pk, _ in values})))
            self.result.new_variants = missing
            self.check_arm_cap(list(dict.fromkeys(e for e, _ in missing)))
        if self.known is not None:
            looked_up = set(unknown)
            self.learn("variant", [k for k in keys if k[0] in looked_up], self.variant_ids)

    def known_of(self, keys: list, kind: str) -> dict:
        """The ids of these keys that committed writes have seen."""
        if self.known is None:
            return {}
        found = {}
        for key in keys:
            pk = self.known.get((kind, key))
            if pk is not None:
                found[key] = pk
        return found

    def learn(self, kind: str, keys: list, ids: dict) -> None:
        """Offer the ids just read (kept only if this write commits)."""
        if self.known is not None:
            for key in keys:
                self.known.learn((kind, key), ids[key])

    def check_arm_cap(self, names: list[str]) -> None:
        """Refuse (422, nothing stored) new arms that take an experiment past the cap."""
        if self.max_arms is None:
            return
        arms = active_arm_counts([self.experiment_ids[n] for n in names])
        for name in names:
            problem = arm_cap_problem(name, arms[self.experiment_ids[name]], self.max_arms)
            if problem:
                raise InvalidChange("variants", problem)

    def upsert(self, rows: list[MetricRow]) -> None:
        self.resolve(list(dict.fromkeys((r.experiment_id, r.variant_id) for r in rows)))
        now = bound(utcnow())
        days = {day: bound(day) for day in {r.date for r in rows}}
        for batch in slices(rows, UPSERT_BATCH):
            values = [self.values(r, days[r.date], now) for r in batch]
            database.cursor().executemany(prepared(upsert_one_row), values)
        self.result.rows += len(rows)

    def upsert_selected(self, pairs: list[tuple[str, str]], select) -> None:
        """Upsert the rows of a SELECT of UPSERT_FIELDS' values in one statement, the
        database doing the per-row work; `pairs` are the (experiment, variant) names its
        rows join to their ids, resolved first."""
        self.resolve(pairs)
        new = [self.variant_ids[self.experiment_ids[e], v] for e, v in self.result.new_variants]
        if new and plain_inserts_pay() and self.inserted(select.where(one_of(Variant.id, new))):
            if len(new) == len(pairs):
                return
            select = select.where(~one_of(Variant.id, new))
        self.stored(replacing(DailyMetric.insert_from(select, fields=UPSERT_FIELDS)))

    def inserted(self, select) -> bool:
        """Insert the rows of arms this writer just created, with no ON CONFLICT: no row can
        have their keys yet, and its check per row (a probe of the unique index before
        each insert, and a second write of the row to confirm it) was an eighth of a bulk
        load on PostgreSQL. Should a writer elsewhere have created one of these arms first
        and stored rows of it (the variant insert then left its row), the insert meets
        the key and is undone: False, and the caller upserts them all."""
        try:
            with database.atomic():  # a savepoint
                self.stored(DailyMetric.insert_from(select, fields=UPSERT_FIELDS))
        except IntegrityError:
            return False
        return True

    def stored(self, insert) -> None:
        # .returning(): no RETURNING id, which on PostgreSQL sent every new row's id back
        # to this process (a million for a million-row load) only to be thrown away.
        self.result.rows += database.execute(insert.returning()).rowcount

    def values(self, row: MetricRow, day, now) -> tuple:
        exp_pk = self.experiment_ids[row.experiment_id]
        var_pk = self.variant_ids[exp_pk, row.variant_id]
        return (exp_pk, var_pk, day, row.impressions, row.clicks, now)

    def mark_new_for_serving(self) -> None:
        """New experiments and variants change what GET /allocation serves (equal split)."""
        changed = {self.experiment_ids[e] for e in self.result.new_experiments}
        changed |= {self.experiment_ids[e] for e, _ in self.result.new_variants}
        mark_changed(sorted(changed))


def upsert_one_row():
    """Every field is given, so peewee adds no values of its own."""
    return upsert_rows(1)


def upsert_rows(count: int):
    placeholder = (0, 0, date(2000, 1, 1), 0, 0, datetime(2000, 1, 1))
    return replacing(DailyMetric.insert_many([placeholder] * count, fields=UPSERT_FIELDS))


def replacing(insert):
    """The insert, replacing the counts of a row already stored for the same
    (experiment, date, variant)."""
    return insert.on_conflict(
        conflict_target=[DailyMetric.experiment, DailyMetric.date, DailyMetric.variant],
        update={
            DailyMetric.impressions: EXCLUDED.impressions,
            DailyMetric.clicks: EXCLUDED.clicks,
            DailyMetric.updated_at: EXCLUDED.updated_at,
        },
    )


def store_rows(rows: list[MetricRow], max_arms: int | None = None) -> StoreResult:
    """Upsert all rows at once and wait for the commit: either every row lands or none does.

    Concurrent calls share a commit (ingest/group_commit.py); each is still all or nothing.
    """
    return queue_rows(rows, max_arms).result()


def queue_rows(rows: list[MetricRow], max_arms: int | None = None, future=None):
    """store_rows without waiting: a Future of its StoreResult (or the given `future`, as
    an asyncio future of the caller's loop, which then gets it)."""
    return WRITES.submit(MetricWrite(rows, max_arms, WRITES.known), future)


class MetricWrite:
    """One queued upsert of metric rows, for the group commit: called, it runs alone (in
    its savepoint); `jointly` offers it as parameters of the group's one upsert statement
    when every experiment and variant id it needs is known committed, which is all a
    repost of existing arms needs (no lookup, no new row, no arm cap to check)."""

    __slots__ = ("known", "max_arms", "rows")

    def __init__(self, rows: list[MetricRow], max_arms: int | None, known: Known):
        self.rows, self.max_arms, self.known = rows, max_arms, known

    def __call__(self) -> StoreResult:
        return upsert_in_transaction(self.rows, self.max_arms, self.known)

    def jointly(self) -> tuple[Callable, list[tuple], StoreResult] | None:
        """(upsert_values, this write's rows of values, its result) or None to run alone."""
        known, now, values = self.known.get, bound(utcnow()), []
        for row in self.rows:
            exp_pk = known(("experiment", row.experiment_id))
            var_pk = None if exp_pk is None else known(("variant", (exp_pk, row.variant_id)))
            if var_pk is None:
                return None
            values.append((exp_pk, var_pk, bound(row.date), row.impressions, row.clicks, now))
        return upsert_values, values, StoreResult(rows=len(self.rows))


class DayWrite:
    """One experiment's day of metrics as the writer process receives it (plain values:
    its experiment id, its date's ISO text and its (variant_id, impressions, clicks)): a
    MetricWrite of those rows, whose row objects are made only when it runs alone (new
    arms, or a group that must run write by write)."""

    __slots__ = ("arms", "day", "experiment_id", "known", "max_arms", "now")

    def __init__(self, experiment_id: str, day: str, arms: list, max_arms, known: Known, now):
        """`now`: the updated_at of its rows, as bound() gives it (one for the writes that
        came together)."""
        self.experiment_id, self.day, self.arms = experiment_id, day, arms
        self.max_arms, self.known, self.now = max_arms, known, now

    def rows(self) -> list[MetricRow]:
        day = date.fromisoformat(self.day)
        return [MetricRow(self.experiment_id, day, *arm) for arm in self.arms]

    def __call__(self) -> StoreResult:
        return upsert_in_transaction(self.rows(), self.max_arms, self.known)

    def jointly(self) -> tuple[Callable, list[tuple], StoreResult] | None:
        """As MetricWrite.jointly: the date's text is what bound() makes of the date."""
        day, values = (self.experiment_id, self.day, self.arms), []
        if not known_values(self.known, day, self.now, values):
            return None
        return upsert_values, values, StoreResult(rows=len(self.arms))


def known_values(known: Known, day: tuple, now: str, values: list) -> bool:
    """Add a day's rows of UPSERT_FIELDS' values (`day` as DayWrite holds it: experiment
    id, date text, (variant_id, impressions, clicks) per arm) to values, if every id they
    need is known committed; False if one is not (values may then hold some of them)."""
    experiment_id, date_text, arms = day
    facts = known.facts.get
    exp_pk = facts(("experiment", experiment_id))
    if exp_pk is None:
        return False
    for variant_id, impressions, clicks in arms:
        var_pk = facts(("variant", (exp_pk, variant_id)))
        if var_pk is None:
            return False
        values.append((exp_pk, var_pk, date_text, impressions, clicks, now))
    return True


def upsert_values(values: list[tuple]) -> None:
    """Upsert rows of UPSERT_FIELDS' values, up to JOINT_BATCH in one statement. One
    statement is one step of the database: sqlite3's executemany takes one per row and
    gives up the GIL around each, and with the event loop's thread wanting it, the writer
    waited for the GIL once per row. A later row for the same key replaces an earlier one,
    as it would one after the other (PostgreSQL refuses a statement that touches a row
    twice)."""
    latest = {(row[0], row[1], row[2]): row for row in values}
    cursor = database.cursor()
    for batch in slices(list(latest.values()), JOINT_BATCH):
        cursor.execute(prepared(upsert_rows, len(batch)), [v for row in batch for v in row])


def upsert_in_transaction(
    rows: list[MetricRow], max_arms: int | None = None, known: Known | None = None
) -> StoreResult:
    """The upsert itself, inside the caller's open write transaction (which commits it);
    `known`: the ids its group commit has seen committed (MetricWriter)."""
    writer = MetricWriter(max_arms, known)
    writer.upsert(rows)
    writer.mark_new_for_serving()
    return writer.result
