"""What is done to one experiment leaves every other one as it was: a recompute, its
settings, archiving it or one of its arms (arms of the same name in other experiments)."""

from datetime import date

from core.schema import Allocation, AllocationReason, Experiment
from scheduler.job import run_job
from tests.helpers import CONTRACT_POST, NOW, load, utc


def three_experiments(clicks: int) -> None:
    load(
        *[
            (f"e{i}", date(2025, 12, 21), v, 1000, clicks + 9 * i * (v == "b"))
            for i in range(3)
            for v in "ab"
        ]
    )


def stored(experiment: str) -> list[tuple]:
    """Every allocation and reason row of the experiment, every day, with the run that wrote it."""
    pk = Experiment.get(Experiment.name == experiment).id
    rows = (
        Allocation.select(
            Allocation.effective_date,
            Allocation.variant,
            Allocation.percentage,
            Allocation.probability,
            Allocation.seed,
            Allocation.run,
        )
        .where(Allocation.experiment == pk)
        .order_by(Allocation.effective_date, Allocation.variant)
    )
    reasons = (
        AllocationReason.select(
            AllocationReason.effective_date,
            AllocationReason.reason,
            AllocationReason.explanation,
            AllocationReason.run,
        )
        .where(AllocationReason.experiment == pk)
        .order_by(AllocationReason.effective_date)
    )
    return list(rows.tuples()) + list(reasons.tuples())


def test_recomputing_one_experiment_leaves_every_others_allocations_and_reasons(db, settings):
    three_experiments(clicks=50)
    run_job(utc(2025, 12, 21, 23, 50), settings)  # history: the 22nd
    run_job(NOW, settings)  # the day the recompute replaces: the 23rd
    before = {name: stored(name) for name in ("e1", "e2")}
    load(("e0", date(2025, 12, 22), "a", 1000, 200))
    recompute = run_job(NOW, settings, experiment_id="e0")
    assert {name: stored(name) for name in ("e1", "e2")} == before
    assert AllocationReason.select().where(AllocationReason.run == recompute.run_id).count() == 1
    assert Allocation.select().where(Allocation.run == recompute.run_id).count() == 2


def post(client, experiment: str) -> None:
    assert (
        client.post("/data", json={**CONTRACT_POST, "experiment_id": experiment}).status_code == 200
    )


def arms_of(client, experiment: str) -> list[tuple]:
    body = client.get(f"/experiments/{experiment}/settings").json()
    return [(v["variant_id"], v["archived"]) for v in body["variants"]]


def test_archiving_an_arm_leaves_the_arm_of_the_same_name_in_another_experiment(client):
    post(client, "first")
    post(client, "second")
    assert client.post("/experiments/second/variants/control/archive").status_code == 200
    assert arms_of(client, "first") == [("control", False), ("variant", False)]
    assert arms_of(client, "second") == [("control", True), ("variant", False)]
    client.post("/recompute")
    first = client.get("/allocation", params={"experiment_id": "first"}).json()
    assert [a["variant_id"] for a in first["allocations"]] == ["control", "variant"]


def test_one_experiments_settings_and_archive_leave_the_others_split(client):
    for name in ("plain", "floored", "archived"):
        post(client, name)
    client.put("/experiments/floored/settings", json={"min_allocation": 0.2})
    client.post("/experiments/archived/archive")
    client.post("/recompute")
    reasons = {
        name: client.get("/allocation", params={"experiment_id": name}).json()["reason"]
        for name in ("plain", "floored", "archived")
    }
    assert reasons == {
        "plain": "thompson",
        "floored": "floor_applied",
        "archived": "experiment_archived",
    }
    assert client.get("/experiments/plain/settings").json()["overrides"] == {}
