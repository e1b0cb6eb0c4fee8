"""Crash during the job, and SIGTERM to the clock mid-run, with real processes."""

import signal

import pytest

from tests.processes import child_env, query, run_once, wait_for

LEASE = 2


def post_day(server, clicks: list[int], experiments=("ctr_a", "ctr_b", "ctr_c")) -> None:
    for name in experiments:
        variants = [
            {"variant_id": f"v{k}", "impressions": 1000, "clicks": c} for k, c in enumerate(clicks)
        ]
        body = {"experiment_id": name, "date": "2025-12-22", "variants": variants}
        assert server.request("POST", "/data", body)[0] == 200


def served(server, experiment="ctr_a") -> dict:
    status, body = server.request("GET", f"/allocation?experiment_id={experiment}")
    assert status == 200, body
    return body


def served_run(server, run_id: int) -> dict:
    return wait_for(
        lambda: (b := served(server)) and b["run_id"] == run_id and b, 10, f"run {run_id} served"
    )


def runs(target) -> list[tuple]:
    return query(target, "SELECT id, trigger, status, error, finished_at FROM run ORDER BY id")


@pytest.fixture
def env(settings):
    return child_env(settings, BANDIT_SCHEDULE_LEASE_SECONDS=LEASE, BANDIT_SERVER_REFRESH_MS=50)


@pytest.fixture
def server_with_a_run(procs, env):
    """A server whose experiments have run 1 published, and newer data posted since."""
    server = procs.server(env)
    post_day(server, [50, 70, 60])
    assert run_once(procs, env).process.returncode == 0
    served_run(server, 1)
    post_day(server, [90, 10, 20])
    return server


@pytest.mark.processes
def test_run_killed_while_publishing_leaves_previous_split_whole(
    settings, procs, env, server_with_a_run
):
    server = server_with_a_run
    before = served(server)
    job = procs.start(["-m", "scheduler", "run-once"], {**env, "BANDIT_TEST_PAUSE_PUBLISH": "30"})
    job.wait_for_line("test pause: publish")
    job.kill()

    assert served(server) == before
    post_day(server, [91, 10, 20])  # the dead writer's lock is gone
    assert runs(settings)[-1][2] == "running"

    # No wait for the lease: the dead holder's pid is gone (SQLite) or its session lock
    # freed (PostgreSQL), which the next run sees.
    assert run_once(procs, env).process.returncode == 0
    killed, after = runs(settings)[1:]
    assert killed[2] == "failed" and "abandoned" in killed[3] and killed[4] is not None
    assert after[2] == "success"
    new = served_run(server, after[0])
    assert new["allocations"] != before["allocations"]
    assert sum(a["percentage"] for a in new["allocations"]) == 100.0


@pytest.mark.processes
def test_run_killed_while_staging_lets_writers_through_and_publishes_nothing(
    settings, procs, env, server_with_a_run
):
    server = server_with_a_run
    before = served(server)
    job = procs.start(["-m", "scheduler", "run-once"], {**env, "BANDIT_TEST_PAUSE_STAGE": "30"})
    job.wait_for_line("test pause: stage")
    post_day(server, [91, 10, 20])  # staged rows hold no lock: this POST is not kept waiting
    job.kill()

    assert served(server) == before
    assert runs(settings)[-1][2] == "running"
    assert run_once(procs, env).process.returncode == 0
    new = served_run(server, runs(settings)[-1][0])
    assert new["allocations"] != before["allocations"]


def clock(procs, env, **pauses):
    child = procs.start(["-m", "scheduler"], {**env, **pauses})
    return child


@pytest.mark.processes
def test_sigterm_during_the_catch_up_run_cancels_it_and_exits_cleanly(
    settings, procs, env, server_with_a_run
):
    before = served(server_with_a_run)
    child = clock(procs, env, BANDIT_TEST_PAUSE_COMPUTE="0.5")
    child.wait_for_line("test pause: compute")
    child.signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0, child.output
    _, trigger, status, error, finished = runs(settings)[-1]
    assert (trigger, status) == ("catch_up", "cancelled")
    assert "cancelled" in error and finished is not None
    assert query(settings, "SELECT COUNT(*) FROM run WHERE status = 'running'")[0][0] == 0
    assert served(server_with_a_run) == before


@pytest.mark.processes
def test_sigterm_during_publish_lets_the_publish_finish_whole(
    settings, procs, env, server_with_a_run
):
    child = clock(procs, env, BANDIT_TEST_PAUSE_PUBLISH="1")
    child.wait_for_line("test pause: publish")
    child.signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0, child.output
    run_id, trigger, status, _, _ = runs(settings)[-1]
    assert (trigger, status) == ("catch_up", "success")
    # The catch-up is for today, so routers keep tomorrow's split from run 1; check rows.
    sums = query(
        settings,
        "SELECT experiment_id, COUNT(*), ROUND(CAST(SUM(percentage) AS NUMERIC), 6) FROM allocation"
        " WHERE run_id = ? GROUP BY experiment_id",
        run_id,
    )
    assert [(n, total) for _, n, total in sums] == [(3, 100.0)] * 3


@pytest.mark.processes
def test_sigterm_to_an_idle_clock_stops_it(settings, procs, env):
    child = clock(procs, {**env, "BANDIT_SCHEDULE_CATCH_UP": "false"})
    child.wait_for_line("clock started")
    child.signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0
    assert "clock stopped" in child.output


@pytest.mark.processes
def test_clock_killed_mid_run_and_restarted_at_once_redoes_the_night(
    settings, procs, env, server_with_a_run
):
    crashed = clock(procs, env, BANDIT_TEST_PAUSE_COMPUTE="5")
    crashed.wait_for_line("test pause: compute")
    crashed.kill()
    restarted = clock(procs, env)
    restarted.wait_for_line("clock started")
    restarted.signal(signal.SIGTERM)
    assert restarted.wait(timeout=10) == 0
    (_, *killed), (_, *redone) = runs(settings)[-2:]
    assert killed[:2] == ["catch_up", "failed"] and "abandoned" in killed[2]
    assert redone[:2] == ["catch_up", "success"]
