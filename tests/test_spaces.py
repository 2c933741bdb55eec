"""Hugging Face Spaces packaging: front matter, Dockerfile and the Gradio Space assembly agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def front_matter(text: str) -> dict[str, str]:
    match = re.match(r"\A---\n(.*?)\n---\n", text, flags=re.S)
    assert match, "a Space README starts with YAML front matter"
    return dict(line.split(": ", 1) for line in match.group(1).splitlines() if ": " in line)


def test_docker_space_front_matter_matches_the_dockerfile():
    meta = front_matter((REPO / "README.md").read_text())
    assert meta["sdk"] == "docker" and meta["app_port"] == "8501"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "--server.port=8501" in dockerfile and "EXPOSE 8501" in dockerfile
    assert 'streamlit", "run", "app.py' in dockerfile
    assert "chromium" in dockerfile and "useradd -m -u 1000" in dockerfile


@pytest.mark.skipif(shutil.which("git") is None, reason="git needed")
def test_gradio_space_assembly(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    subprocess.run(
        ["bash", str(REPO / "docs/spaces/make_gradio_space.sh"), str(tmp_path / "space")],
        check=True,
        capture_output=True,
    )
    space = tmp_path / "space"
    meta = front_matter((space / "README.md").read_text())
    assert meta["sdk"] == "gradio"
    assert (space / meta["app_file"]).exists()
    assert ".[gradio]" in (space / "requirements.txt").read_text()
    assert not (space / "Dockerfile").exists()
    assert "## Run the tests" in (space / "README.md").read_text()  # the project README follows
