"""`python -m api` as the Procfile starts it: uvicorn's fast stack, the access log setting,
and several worker processes that each serve what any of them published."""

import http.client
from contextlib import closing
from pathlib import Path

import pytest

from tests.helpers import CONTRACT_POST
from tests.processes import HOST, child_env, wait_for

pytestmark = pytest.mark.processes


def loaded_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def fresh_connection_get(port: int, path: str) -> bytes:
    """One request on its own connection, so that any worker may accept it."""
    with closing(http.client.HTTPConnection(HOST, port, timeout=10)) as conn:
        conn.request("GET", path)
        return conn.getresponse().read()


def test_the_web_process_serves_on_httptools_and_uvloop(settings, procs):
    web = procs.web(child_env(settings))
    assert web.request("GET", "/healthz")[0] == 200
    libraries = loaded_libraries(web.process.pid)
    assert "httptools/parser" in libraries
    assert "uvloop/loop" in libraries


def test_the_access_log_is_off_by_default(settings, procs):
    web = procs.web(child_env(settings))
    web.request("GET", "/healthz")
    web.request("GET", "/allocation?experiment_id=none")
    assert web.worker_pids() == []
    assert "GET /healthz" not in web.output
    assert "GET /allocation" not in web.output


def test_the_access_log_setting_logs_each_request(settings, procs):
    web = procs.web(child_env(settings, BANDIT_SERVER_ACCESS_LOG="true"))
    web.request("GET", "/healthz")
    web.wait_for_line(r'"GET /healthz HTTP/1.1" 200', timeout=10)


def test_every_worker_serves_a_recompute_made_in_one_of_them(settings, procs):
    web = procs.web(child_env(settings, BANDIT_SERVER_WORKERS="2"))
    wait_for(lambda: len(web.worker_pids()) == 2, 20, "two worker processes")
    # The port is bound before the workers start; each listens once its startup is done.
    wait_for(lambda: web.output.count("Application startup complete") == 2, 20, "both workers")
    assert web.request("POST", "/data", CONTRACT_POST)[0] == 200
    status, summary = web.request("POST", "/recompute")
    assert status == 200
    expected = b'"run_id":%d' % summary["run_id"]

    def every_answer_is_the_recompute():
        return all(
            expected in fresh_connection_get(web.port, "/allocation?experiment_id=ctr_test")
            for _ in range(40)
        )

    # Bounded, not timed: the figure is in bench/; here each worker must get there.
    wait_for(every_answer_is_the_recompute, 10, "every worker to serve the recompute")
