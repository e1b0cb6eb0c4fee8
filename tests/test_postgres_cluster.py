"""The throwaway PostgreSQL cluster of tests/postgres.py, on a real server: each clone of a
template has the template's tables and none of another clone's writes, drop removes the
database (open connections and all), and missing binaries are a skip, or a failure under
CI."""

import psycopg
import pytest

from tests import postgres


def one_table(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE item (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO item (name) VALUES ('from the template')")


@pytest.fixture(scope="module")
def template(postgres_cluster):
    name = postgres_cluster.create_template("one_table", one_table)
    yield name
    postgres_cluster.drop(postgres_cluster.url(name))


def names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM item ORDER BY id")]


def test_a_clone_has_the_template_tables_and_rows(postgres_cluster, template):
    url = postgres_cluster.clone(template)
    assert names(url) == ["from the template"]
    postgres_cluster.drop(url)


def test_a_clone_does_not_see_another_clones_writes(postgres_cluster, template):
    first = postgres_cluster.clone(template)
    with psycopg.connect(first) as conn:
        conn.execute("INSERT INTO item (name) VALUES ('first clone')")
    second = postgres_cluster.clone(template)
    assert first != second
    assert names(first) == ["from the template", "first clone"]
    assert names(second) == ["from the template"]
    postgres_cluster.drop(first)
    postgres_cluster.drop(second)


def test_drop_removes_the_database_even_with_a_connection_open(postgres_cluster, template):
    url = postgres_cluster.clone(template)
    dbname = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    left_open = psycopg.connect(url)
    assert dbname in postgres_cluster.databases()
    postgres_cluster.drop(url)
    assert dbname not in postgres_cluster.databases()
    with pytest.raises(psycopg.OperationalError):
        left_open.execute("SELECT 1")
    left_open.close()


def test_a_template_refuses_connections(postgres_cluster, template):
    """So no test can hold it open, which would make every later clone fail."""
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        psycopg.connect(postgres_cluster.url(template))


def test_a_connection_left_open_by_prepare_does_not_break_the_clones(postgres_cluster):
    kept = []

    def prepare(url):
        kept.append(psycopg.connect(url, autocommit=True))
        kept[0].execute("CREATE TABLE thing (id int)")

    name = postgres_cluster.create_template("left_open", prepare)
    url = postgres_cluster.clone(name)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM thing").fetchone() == (0,)
    kept[0].close()
    postgres_cluster.drop(url)
    postgres_cluster.drop(postgres_cluster.url(name))
    assert name not in postgres_cluster.databases()


def test_the_url_is_a_unix_socket_uri_psycopg_and_peewee_accept(postgres_cluster, template):
    from playhouse.db_url import connect

    url = postgres_cluster.clone(template)
    assert url.startswith("postgresql://bandit@/t")
    assert "host=%2F" in url
    assert psycopg.conninfo.conninfo_to_dict(url)["host"] == postgres_cluster.socket_dir
    database = connect(url)
    assert database.execute_sql("SELECT name FROM item").fetchall() == [("from the template",)]
    database.close()
    postgres_cluster.drop(url)


def test_the_server_runs_with_the_test_settings(postgres_cluster):
    rows = postgres_cluster.execute(
        "SELECT name, setting FROM pg_settings WHERE name IN"
        " ('fsync', 'listen_addresses', 'max_connections', 'server_encoding')"
    )
    assert dict(rows) == {
        "fsync": "off",
        "listen_addresses": "",
        "max_connections": "200",
        "server_encoding": "UTF8",
    }


@pytest.fixture
def no_binaries(monkeypatch):
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    for name in ("CI", "BANDIT_TEST_REQUIRE_POSTGRES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_missing_binaries_are_a_skip_that_says_how_to_install_them(no_binaries):
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        postgres.require_cluster()


@pytest.mark.parametrize(("name", "value"), [("CI", "true"), ("BANDIT_TEST_REQUIRE_POSTGRES", "1")])
def test_missing_binaries_are_a_failure_under_ci(no_binaries, name, value):
    no_binaries.setenv(name, value)
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        postgres.require_cluster()


def test_ci_set_to_false_still_skips(no_binaries):
    no_binaries.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        postgres.require_cluster()


def test_the_binaries_are_found_here():
    """This machine has them: the lookup must find a folder holding initdb and pg_ctl."""
    bindir = postgres.find_bindir()
    assert bindir is not None and (bindir / "initdb").is_file()


def test_a_cluster_stops_and_leaves_nothing_behind():
    cluster = postgres.Cluster().start()
    folder = cluster.folder
    assert (folder / "data" / "postmaster.pid").exists()
    cluster.stop()
    cluster.stop()  # twice is fine
    assert not folder.exists()
