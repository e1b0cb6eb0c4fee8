"""The README and docs/internals.md name only files and folders that exist."""

import re

from tests.helpers import ROOT

PATH = re.compile(r"\b(?:core|api|ingest|scheduler|bench|tests|scripts)/[\w./-]*")


def named_paths(text: str) -> set[str]:
    return {match.rstrip(".") for match in PATH.findall(text)}


def test_every_path_the_readme_names_exists():
    texts = [
        (ROOT / name).read_text(encoding="utf-8") for name in ("README.md", "docs/internals.md")
    ]
    named = set().union(*map(named_paths, texts))
    assert sorted(p for p in named if not (ROOT / p).exists()) == []
    assert "core/db/sqlite.py" in named  # the pattern finds paths at all
