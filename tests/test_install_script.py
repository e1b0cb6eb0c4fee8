"""scripts/install on a checkout whose .venv was left half-built."""

import shutil
import subprocess
import sys

from tests.helpers import ROOT


def checkout(tmp_path):
    """scripts/install beside requirement files that need nothing from an index."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "install", tmp_path / "scripts" / "install")
    (tmp_path / "requirements.txt").write_text("# nothing to install\n")
    return tmp_path


def install(root) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "scripts/install"], cwd=root, capture_output=True, text=True, timeout=300
    )


def has_pip(root) -> bool:
    command = [root / ".venv/bin/python", "-m", "pip", "--version"]
    found = subprocess.run(command, capture_output=True)
    return found.returncode == 0


def test_a_venv_without_pip_is_rebuilt(tmp_path):
    root = checkout(tmp_path)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", root / ".venv"], check=True)
    assert not has_pip(root)
    done = install(root)
    assert done.returncode == 0, done.stderr
    assert "rebuilding it" in done.stderr and has_pip(root)


def test_a_venv_whose_python_is_gone_is_rebuilt(tmp_path):
    root = checkout(tmp_path)
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(tmp_path / "removed-python")
    done = install(root)
    assert done.returncode == 0, done.stderr
    assert has_pip(root)


def test_a_healthy_venv_is_kept(tmp_path):
    root = checkout(tmp_path)
    assert install(root).returncode == 0
    marker = root / ".venv" / "kept"
    marker.touch()
    done = install(root)
    assert done.returncode == 0 and "rebuilding" not in done.stderr and marker.exists()
