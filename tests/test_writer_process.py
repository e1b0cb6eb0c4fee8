"""server.writer_process: POST /data's writes stored by a child of the web process.

Its answers are the writer thread's (stored rows, a refused arm, a busy lock, a storage
fault); a child that dies costs only the writes it had not answered, which are told so,
and the next write starts a new one; it stops with the web process, whether the web
process stops cleanly or is killed, and a clean stop answers the writes in flight.
"""

import dataclasses
import os
import signal
import sqlite3
import threading
import time

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.db import health
from ingest.writer_process import WriteRefused, frame, frames, portable, rebuilt
from tests.helpers import CONTRACT_POST, body, variant
from tests.processes import alive, child_env, query, sqlite_path, wait_for, writer_pids


def with_writer(settings, writer_process: bool, **sampling):
    server = dataclasses.replace(settings.server, writer_process=writer_process)
    chosen = dataclasses.replace(settings.sampling, **sampling)
    return dataclasses.replace(settings, server=server, sampling=chosen)


def answers(settings, writer_process: bool, requests: list[dict]) -> list[tuple]:
    app = create_app(with_writer(settings, writer_process, max_active_arms=3))
    with TestClient(app) as client:
        return [
            (r.status_code, r.json(), r.headers.get("retry-after"))
            for r in (client.post("/data", json=payload) for payload in requests)
        ]


def test_the_writer_process_answers_every_write_as_the_writer_thread(settings, new_database):
    requests = [
        CONTRACT_POST,
        {  # a repost with new counts: no new arm (one upsert for the group)
            **CONTRACT_POST,
            "variants": [variant(variant_id="control", clicks=51), variant(variant_id="variant")],
        },
        body(experiment_id="wide", variants=[variant(variant_id=f"v{i}") for i in range(4)]),
        body(experiment_id="wide", variants=[variant(variant_id=f"v{i}") for i in range(3)]),
        body(experiment_id="wide", variants=[variant(variant_id="v9")]),  # past the cap
    ]
    in_process = answers(settings, True, requests)
    assert [status for status, _, _ in in_process] == [200, 200, 422, 200, 422]
    in_thread = new_database(settings)
    assert in_process == answers(in_thread, False, requests)
    stored = (
        "SELECT e.name, v.name, m.date, m.impressions, m.clicks FROM daily_metric AS m"
        " JOIN experiment AS e ON e.id = m.experiment_id JOIN variant AS v ON v.id = m.variant_id"
        " ORDER BY e.name, v.name"
    )
    rows = query(settings, stored)
    assert len(rows) == 5 and rows == query(in_thread, stored)  # the same rows, the same values


def test_a_busy_sqlite_file_is_the_same_503_from_the_writer_process(settings):
    settings = dataclasses.replace(
        settings, database=dataclasses.replace(settings.database, busy_timeout_ms=200)
    )
    app = create_app(with_writer(settings, True))
    with TestClient(app) as client:
        assert client.post("/data", json=CONTRACT_POST).status_code == 200
        holder = sqlite3.connect(sqlite_path(settings), isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            refused = client.post("/data", json=CONTRACT_POST)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert refused.status_code == 503
        assert refused.json()["error"] == "busy"
        assert refused.headers["retry-after"] == "1"
        assert client.post("/data", json=CONTRACT_POST).status_code == 200


def test_what_refused_a_write_crosses_the_pipe_as_the_error_handlers_need_it():
    from core.db import DatabaseFault, OperationalError
    from core.experiments import InvalidChange

    cap = rebuilt(portable(InvalidChange("variants", "too many arms")))
    assert isinstance(cap, InvalidChange) and (cap.field, cap.message) == (
        "variants",
        "too many arms",
    )
    busy = rebuilt(portable(OperationalError("database is locked")))
    assert isinstance(busy, WriteRefused) and busy.kind == "busy"
    assert str(busy) == "database is locked"
    fault = rebuilt(portable(DatabaseFault("database file /x is missing")))
    assert (fault.kind, str(fault)) == ("storage", "database file /x is missing")
    bug = rebuilt(portable(KeyError("x")))
    assert bug.kind == "error" and "KeyError" in str(bug)
    assert portable(None) is None


def test_frames_come_off_a_buffer_only_when_whole():
    data = frame([1, "a"]) + frame({"b": (2, None)})
    buffer = bytearray(data[:-3])
    assert frames(buffer) == [[1, "a"]]
    buffer += data[-3:]
    assert frames(buffer) == [{"b": (2, None)}]
    assert buffer == bytearray()


def post_until(web, stop: threading.Event, statuses: list) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        try:
            statuses.append(
                web.request("POST", "/data", body(date="2025-12-22", experiment_id=f"k{i % 7}"))[0]
            )
        except OSError:
            statuses.append("gone")
            return


@pytest.mark.processes
def test_a_writer_process_that_dies_costs_only_its_unanswered_writes(settings, procs):
    web = procs.web(child_env(settings)).wait_ready()
    assert web.request("POST", "/data", CONTRACT_POST)[0] == 200
    (first,) = wait_for(lambda: writer_pids(web.process.pid), 10, "the writer process")
    stop, statuses = threading.Event(), []
    poster = threading.Thread(target=post_until, args=(web, stop, statuses))
    poster.start()
    wait_for(lambda: len(statuses) > 20, 20, "posts")
    os.kill(first, signal.SIGKILL)
    time.sleep(0.3)
    status, answer = web.request("POST", "/data", CONTRACT_POST)
    if status == 503:
        assert answer["error"] == "unavailable"
    wait_for(lambda: web.request("POST", "/data", CONTRACT_POST)[0] == 200, 10, "a new writer")
    (second,) = writer_pids(web.process.pid)
    assert second != first
    stop.set()
    poster.join(20)
    assert set(statuses) <= {200, 503}, statuses
    assert "the writer process exited with status -9" in web.output
    assert web.request("GET", "/healthz")[0] == 200


@pytest.mark.processes
def test_a_clean_stop_answers_the_writes_in_flight_and_the_writer_exits(settings, procs):
    web = procs.web(child_env(settings)).wait_ready()
    stop, statuses = threading.Event(), []
    posters = [threading.Thread(target=post_until, args=(web, stop, statuses)) for _ in range(4)]
    for poster in posters:
        poster.start()
    wait_for(lambda: len(statuses) > 40, 20, "posts")
    (writer,) = writer_pids(web.process.pid)
    os.killpg(web.process.pid, signal.SIGTERM)  # as a supervisor stops the whole group
    assert web.wait(30) == -signal.SIGTERM  # uvicorn stops, then dies of the signal it got
    assert "Application shutdown complete" in web.output
    stop.set()
    for poster in posters:
        poster.join(20)
    acknowledged = statuses.count(200)
    assert acknowledged > 40 and 503 not in statuses, statuses[-20:]
    wait_for(lambda: not alive(writer), 10, "the writer to exit")
    assert "the writer process exited" not in web.output


@pytest.mark.processes
def test_the_writer_process_exits_when_the_web_process_is_killed(settings, procs):
    web = procs.web(child_env(settings)).wait_ready()
    assert web.request("POST", "/data", CONTRACT_POST)[0] == 200
    (writer,) = writer_pids(web.process.pid)
    web.process.kill()  # the web process alone: its child is left to see the pipe close
    web.wait(10)
    wait_for(lambda: not alive(writer), 10, "the writer to exit")
    assert query(settings, "SELECT COUNT(*) FROM daily_metric") == [(2,)]


def test_health_mirrors_the_writer_processs_storage_fault():
    from ingest.writer_process import WriterProcess

    writer = WriterProcess(None)
    before = health.fault
    try:
        writer.settle([(1, None, ("storage", "disk full"))], "disk full")
        assert health.fault == "disk full"
        writer.settle([(2, None, ("busy", "database is locked"))], None)
        assert health.fault == "disk full"  # no write committed: still degraded
        writer.settle([(3, (2, [], []), None)], None)
        assert health.fault is None
    finally:
        health.fault = before


def test_writes_queued_behind_a_frame_when_the_writer_dies_do_not_hold_up_the_next_child(
    db, settings, monkeypatch
):
    """A write that came while a frame was in flight waits for the next frame. If the child
    died then, that write was failed with the rest; it must not be left queued, or no
    frame is ever sent to the next child and every later write hangs."""
    import asyncio

    import ingest.writer_process as writer_process
    from ingest.validation import DailyMetrics

    monkeypatch.setattr(writer_process, "RESTART_AFTER_S", 0.0)

    def rows(experiment_id):
        return DailyMetrics.model_validate(body(experiment_id=experiment_id, variants=[variant()]))

    async def scenario():
        writer = writer_process.WriterProcess(settings.database)
        writer.start(asyncio.get_running_loop())
        try:
            in_flight = writer.submit(rows("a"), None)
            await asyncio.sleep(0)  # the flush: the first frame is sent
            queued = writer.submit(rows("b"), None)  # behind it, for the next frame
            assert writer.in_flight and writer.outgoing
            writer.process.kill()
            for future, told in ((in_flight, "may or may not be stored"), (queued, "nothing")):
                with pytest.raises(WriteRefused) as refused:
                    await asyncio.wait_for(future, 20)
                assert refused.value.kind == "stopped" and told in str(refused.value)
            result = await asyncio.wait_for(writer.submit(rows("c"), None), 20)
            assert result.rows == 1
        finally:
            writer.close()

    asyncio.run(scenario())
    stored = "SELECT e.name FROM daily_metric AS m JOIN experiment AS e ON e.id = m.experiment_id"
    assert query(settings, stored) == [("c",)]  # the first two were never committed


def test_a_writer_process_that_dies_as_it_starts_fails_the_write_at_once(db, settings, monkeypatch):
    """A child that exits before it reads anything (here: a command that is not the
    writer) leaves its pipe closed: the write that started it is told, not left waiting."""
    import asyncio
    import subprocess

    import ingest.writer_process as writer_process
    from ingest.validation import DailyMetrics

    started = subprocess.Popen

    def exited_already(command, **kwargs):
        process = started(["/bin/true"], **kwargs)
        process.wait()
        return process

    monkeypatch.setattr(writer_process.subprocess, "Popen", exited_already)

    async def scenario():
        writer = writer_process.WriterProcess(settings.database)
        try:
            day = DailyMetrics.model_validate(body(variants=[variant()]))
            with pytest.raises(WriteRefused) as refused:
                await asyncio.wait_for(writer.submit(day, None), 10)
            assert refused.value.kind == "stopped"
        finally:
            writer.close()

    asyncio.run(scenario())


# The child's own loop body (ingest.writer_process.serve_writes), run in this process, in a
# thread of its own as the child's one thread, on a pipe: its answer, and what it stored.

DAY_TEXT = "2025-12-22"


@pytest.fixture
def child(db):
    """A writer thread serving writes as the child does; what it knew, in `writes`."""
    from concurrent.futures import ThreadPoolExecutor

    from core.db import database
    from ingest.group_commit import GroupCommit

    with ThreadPoolExecutor(1) as thread:
        thread.writes = GroupCommit()
        yield thread
        thread.submit(database.close).result()


def served(child, received: list) -> tuple[list, str | None]:
    """serve_writes of these (key, day, max_arms); its one frame: (outcomes, fault)."""
    from ingest.writer_process import Channel, serve_writes

    read, write = os.pipe()
    try:
        child.submit(serve_writes, received, child.writes, Channel(write)).result(10)
        (answer,) = frames(bytearray(os.read(read, 1 << 16)))
    finally:
        os.close(read)
        os.close(write)
    return answer


def day_of(experiment: str, clicks: int, arms=("a", "b")) -> tuple:
    return experiment, DAY_TEXT, [(arm, 100, clicks) for arm in arms]


def clicks_stored(experiment: str) -> list[tuple]:
    from core.schema import DailyMetric, Experiment, Variant

    rows = (
        DailyMetric.select(Variant.name, DailyMetric.clicks)
        .join(Variant)
        .join(Experiment, on=Variant.experiment == Experiment.id)
        .where(Experiment.name == experiment)
    )
    return sorted(rows.tuples())


def store_arms(child, names=("e1", "e2")) -> None:
    """Arms a and b of these, stored: the child knows their ids from now on."""
    outcomes, _ = served(child, [(k, day_of(name, 5), None) for k, name in enumerate(names)])
    assert [o[1][1] for o in outcomes] == [[name] for name in names]  # new experiments


def test_the_writer_process_stores_reposts_of_known_arms_as_one_upsert(child, monkeypatch):
    from ingest.group_commit import GroupCommit

    store_arms(child)
    monkeypatch.setattr(GroupCommit, "serve_group", lambda *a, **k: pytest.fail("one by one"))
    received = [(7, day_of("e1", 7), None), (8, day_of("e2", 8), None), (9, day_of("e1", 9), None)]
    outcomes, fault = served(child, received)
    assert outcomes == [(7, (2, [], []), None), (8, (2, [], []), None), (9, (2, [], []), None)]
    assert fault is None
    assert clicks_stored("e1") == [("a", 9), ("b", 9)]  # the later repost of the same day
    assert clicks_stored("e2") == [("a", 8), ("b", 8)]


def test_a_wrong_write_in_the_writer_processs_upsert_fails_alone(child):
    from core.schema import Experiment

    store_arms(child)
    e2 = Experiment.get(Experiment.name == "e2").id
    child.writes.known.facts[("variant", (e2, "a"))] = 10**9  # an id no variant has
    outcomes, _ = served(child, [(7, day_of("e1", 7), None), (8, day_of("e2", 7), None)])
    assert outcomes[0] == (7, (2, [], []), None)
    key, result, refusal = outcomes[1]
    assert (key, result, refusal[0]) == (8, None, "error")
    assert "foreign key" in refusal[1].lower()
    assert clicks_stored("e1") == [("a", 7), ("b", 7)]
    assert clicks_stored("e2") == [("a", 5), ("b", 5)]  # all or nothing


def test_a_busy_database_refuses_every_write_of_the_writer_processs_upsert(child, monkeypatch):
    from playhouse.pool import MaxConnectionsExceeded

    import ingest.writer_process as writer_process

    store_arms(child)

    def busy(values):
        raise MaxConnectionsExceeded("the database is busy")  # busy on either engine

    monkeypatch.setattr(writer_process, "upsert_values", busy)
    outcomes, _ = served(child, [(7, day_of("e1", 7), None), (8, day_of("e2", 7), None)])
    assert [(key, result, refusal[0]) for key, result, refusal in outcomes] == [
        (7, None, "busy"),
        (8, None, "busy"),
    ]
    assert clicks_stored("e1") == [("a", 5), ("b", 5)]


def test_new_arms_in_a_frame_of_reposts_go_through_the_group_commit(child):
    store_arms(child, ("e1",))
    received = [(7, day_of("e1", 7), None), (8, day_of("e1", 8, ("a", "b", "c")), None)]
    outcomes, _ = served(child, received)
    assert outcomes == [(7, (2, [], []), None), (8, (3, [], [("e1", "c")]), None)]
    assert clicks_stored("e1") == [("a", 8), ("b", 8), ("c", 8)]
