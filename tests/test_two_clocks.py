"""Two clocks on one database: the scheduled run happens once (the run row is the lease)."""

import signal

import pytest

from tests.processes import child_env, query, wait_for


def seed(procs, env) -> None:
    server = procs.server(env)
    for name in ("exp_a", "exp_b", "exp_c"):
        body = {
            "experiment_id": name,
            "date": "2025-12-22",
            "variants": [
                {"variant_id": "control", "impressions": 1000, "clicks": 50},
                {"variant_id": "variant", "impressions": 1000, "clicks": 70},
            ],
        }
        assert server.request("POST", "/data", body)[0] == 200
    server.kill()


@pytest.mark.processes
def test_a_second_clock_does_not_repeat_the_scheduled_run(settings, procs):
    env = child_env(settings)
    seed(procs, env)
    # The first clock's catch-up takes about 4.5 s, so the second starts while it runs.
    first = procs.start(["-m", "scheduler"], {**env, "BANDIT_TEST_PAUSE_COMPUTE": "1.5"})
    first.wait_for_line("test pause: compute")
    second = procs.start(["-m", "scheduler"], env)
    second.wait_for_line("clock started")
    first.wait_for_line("clock started")
    wait_for(lambda: query(settings, "SELECT status FROM run") == [("success",)], 10, "the one run")
    for clock in (first, second):
        clock.signal(signal.SIGTERM)
        assert clock.wait(timeout=10) == 0, clock.output

    rows = query(settings, "SELECT trigger, status, scheduled_for FROM run")
    assert len(rows) == 1 and rows[0][:2] == ("catch_up", "success"), rows
    assert "another process's; skipping" in second.output
    assert query(settings, "SELECT COUNT(*) FROM allocation") == [(6,)]


@pytest.mark.processes
def test_a_clock_started_after_the_run_finished_does_not_run_it_again(settings, procs):
    env = child_env(settings)
    seed(procs, env)
    for _ in range(2):
        clock = procs.start(["-m", "scheduler"], env)
        clock.wait_for_line("clock started")
        clock.signal(signal.SIGTERM)
        assert clock.wait(timeout=10) == 0
    assert query(settings, "SELECT trigger, status FROM run") == [("catch_up", "success")]
