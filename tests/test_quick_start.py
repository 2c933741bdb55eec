"""The README's quick start: two commands, `make app` and `make test`; CI is the second one.

The Makefile is checked with ``make --dry-run`` and ``make --question`` against a virtual
environment folder of the test's own (nothing is installed); the slow test runs the first
command for real on a fresh copy of the repository (scripts/check_fresh_clone.sh).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def section(heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## )", README.read_text(), flags=re.S | re.M)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def commands(block: str) -> list[str]:
    """The commands of a shell block: each line without its comment, blank lines dropped."""
    lines = (shlex.split(line, comments=True) for line in block.splitlines())
    return [" ".join(words) for words in lines if words]


def quick_start_block() -> str:
    match = re.match(r"\s*```bash\n(.*?)\n```", section("Quick start"), flags=re.S)
    assert match, "the quick start opens with a bash block"
    return match.group(1)


def test_the_quick_start_is_the_first_section_and_two_commands():
    body = re.sub(r"\A---\n.*?\n---\n", "", README.read_text(), count=1, flags=re.S)
    assert re.findall(r"^## (.+)$", body, flags=re.M)[0] == "Quick start"
    assert commands(quick_start_block()) == ["make app", "make test"]
    assert "PORT" in quick_start_block() and "CRMN_VIZ_DATA_DIR" in quick_start_block()
    assert "## Install" in README.read_text(), "the manual install stays, further down"


def test_ci_runs_the_second_command_and_nothing_else():
    ci = [
        line for line in commands((REPO / ".ci" / "run").read_text()) if not line.startswith(("set ", "cd "))
    ]
    assert ci == ["make test"]
    run_the_tests = re.search(r"```bash\n(.*?)\n```", section("Run the tests"), flags=re.S)
    assert run_the_tests and commands(run_the_tests.group(1)) == ["make test"]


def test_the_virtual_environment_is_not_committed():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", ".venv/bin/python"]).returncode == 0


def make(*arguments: str, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-C", str(REPO), f"VENV={venv}", *arguments], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def set_up_venv(tmp_path) -> Path:
    """A virtual environment folder whose set-up stamp is newer than everything it depends on."""
    venv = tmp_path / "venv"
    venv.mkdir()
    stamp = venv / ".crmn-viz-setup"
    stamp.touch()
    later = time.time() + 5
    os.utime(stamp, (later, later))
    return venv


@needs_make
def test_the_setup_runs_once_then_is_up_to_date(tmp_path, set_up_venv):
    fresh = make("--question", "setup", venv=tmp_path / "none")
    assert fresh.returncode == 1, "without its stamp the set-up must run"
    planned = make("--dry-run", "setup", venv=tmp_path / "none")
    assert "scripts/setup.sh" in planned.stdout
    assert make("--question", "setup", venv=set_up_venv).returncode == 0, "a second run does nothing"
    os.utime(set_up_venv / ".crmn-viz-setup", (1, 1))  # older than pyproject.toml: due again
    assert make("--question", "setup", venv=set_up_venv).returncode == 1


@needs_make
def test_make_test_is_what_ci_ran(set_up_venv):
    planned = make("--dry-run", "test", venv=set_up_venv)
    assert planned.returncode == 0, planned.stderr
    steps = [
        "python -m ruff check .",
        "python -m ruff format --check .",
        "python -m pytest -q",
        "crmn-viz bench --quick --repeats 1 > /dev/null",
    ]
    positions = [planned.stdout.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), planned.stdout
    assert "scripts/setup.sh" not in planned.stdout, "set up already: no second install"
    for line in planned.stdout.splitlines():
        if any(step in line for step in steps):
            assert f"{set_up_venv}/bin:" in line, "every step runs from the virtual environment"


@needs_make
def test_make_app_serves_the_app_on_port(set_up_venv):
    planned = make("--dry-run", "app", "PORT=8765", venv=set_up_venv)
    assert planned.returncode == 0, planned.stderr
    assert "streamlit run app.py --server.port=8765" in planned.stdout


@pytest.mark.slow
@needs_make
def test_a_fresh_clone_serves_the_app_with_the_first_command():
    """scripts/check_fresh_clone.sh: clone (or copy the uncommitted tree), `make app`, health, stop.

    Minutes: it makes a new virtual environment and installs PyTorch in it.
    """
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True, check=True
    ).stdout.strip()
    script = ["bash", str(REPO / "scripts" / "check_fresh_clone.sh"), *(["--worktree"] if dirty else [])]
    result = subprocess.run(script, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert '/_stcore/health answered "ok"' in result.stdout and "[fresh-clone] OK" in result.stdout
