"""The arrows of DESIGN.md, read from every import (inside functions too) with `ast`.

api -> core, ingest, scheduler.job, scheduler.runs; ingest -> core; scheduler -> core;
core imports no adapter; nothing imports api; api holds no SQL. Test modules share helpers
through tests/helpers.py, tests/processes.py and tests/reference.py, never each other.
"""

import ast
import functools

import pytest

from tests.helpers import ROOT

PACKAGES = ("api", "core", "ingest", "scheduler")
PROJECT = (*PACKAGES, "tests")


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*packages: str) -> list[str]:
    return sorted(module_name(p) for package in packages for p in (ROOT / package).rglob("*.py"))


def path_of(module: str):
    base = ROOT.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def is_module(name: str) -> bool:
    return path_of(name).exists()


def absolute(node: ast.ImportFrom, importer: str) -> str:
    """The module a `from ... import` names, with relative imports resolved."""
    if not node.level:
        return node.module
    package = importer.split(".")
    if path_of(importer).name != "__init__.py":
        package = package[:-1]
    package = package[: len(package) - node.level + 1]
    return ".".join([*package, node.module] if node.module else package)


def names_of(node, importer: str) -> set[str]:
    """`from core import testhooks` imports core.testhooks; `from core.db import database`
    imports core.db."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = absolute(node, importer)
    return {f"{base}.{a.name}" if is_module(f"{base}.{a.name}") else base for a in node.names}


@functools.cache
def imports(module: str) -> frozenset[str]:
    tree = ast.parse(path_of(module).read_text(), filename=str(path_of(module)))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= names_of(node, module)
    return frozenset(found)


def within(names, *prefixes: str) -> set[str]:
    """The names that are one of the prefixes or inside one."""
    return {n for n in names if any(n == p or n.startswith(f"{p}.") for p in prefixes)}


def outside(names, *allowed: str) -> set[str]:
    """The project modules among names that are none of the allowed ones nor inside them."""
    return within(names, *PROJECT) - within(names, *allowed)


def test_every_package_is_read():
    assert {m.split(".")[0] for m in modules(*PACKAGES)} == set(PACKAGES)
    assert "core.migrations" in modules("core")
    assert "scheduler.job" in imports("api.recompute")
    assert "core.testhooks" in imports("scheduler.publish")  # from core import testhooks


@pytest.mark.parametrize("module", modules("core", "ingest", "scheduler"))
def test_nothing_outside_api_imports_api(module):
    assert within(imports(module), "api") == set()


@pytest.mark.parametrize("module", modules("core"))
def test_core_imports_nothing_from_api_ingest_or_scheduler(module):
    assert outside(imports(module), "core") == set()


@pytest.mark.parametrize("module", modules("ingest"))
def test_ingest_imports_only_core_and_itself(module):
    assert outside(imports(module), "core", "ingest") == set()


@pytest.mark.parametrize("module", modules("scheduler"))
def test_scheduler_imports_only_core_and_itself(module):
    assert outside(imports(module), "core", "scheduler") == set()


@pytest.mark.parametrize("module", modules("api"))
def test_api_reaches_the_scheduler_only_through_job_and_runs(module):
    scheduler = within(imports(module), "scheduler")
    assert scheduler - {"scheduler.job", "scheduler.runs"} == set()


# api/errors.py registers its 503 handler for peewee.OperationalError; core.db could export
# the error type (it already classifies it with is_busy) and the mark go.
@pytest.mark.parametrize("module", modules("api"))
def test_api_holds_no_sql_nor_models(module):
    """core.db (connections, transactions) is allowed; the models and peewee itself are not."""
    assert within(imports(module), "core.schema", "peewee", "playhouse") == set()


@pytest.mark.parametrize("module", [m for m in modules("tests") if m.startswith("tests.test_")])
def test_no_test_module_imports_another_or_conftest(module):
    shared = {n for n in imports(module) if n.startswith("tests.test_") or n == "tests.conftest"}
    assert shared == set()


ENGINE_MODULES = ("core.db", "core.db.sqlite", "core.db.postgres")


@pytest.mark.parametrize(
    "module", [m for m in modules(*PACKAGES) if m not in ENGINE_MODULES], ids=str
)
def test_only_the_database_package_names_an_engine(module):
    """Everything that differs between SQLite and PostgreSQL lives in core/db/: no other
    module imports either driver."""
    assert within(imports(module), "sqlite3", "psycopg", "playhouse.pool") == set()
