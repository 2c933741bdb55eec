"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README must show the Python API"
    code = blocks[0].replace("/tmp/my-crmn", str(tmp_path / "my-crmn"))
    exec(compile(code, "README.md", "exec"), {})


def test_ci_runs_the_readme_test_command():
    ci = (README.parent / ".ci" / "run").read_text()
    command = re.search(r"## Run the tests\n\n```bash\n(.*?)\n```", README.read_text(), flags=re.S)
    assert command and command.group(1).strip() in ci


def test_readme_zoo_table_is_what_the_cards_say(capsys):
    """Every number in the README's zoo table comes from the cards (``crmn-viz list --markdown``)."""
    from crmn_viz.frontends.cli import main

    assert main(["list", "--markdown", "--dir", str(README.parent / "checkpoints")]) == 0
    table = capsys.readouterr().out.strip()
    assert table.count("\n") >= 2
    assert table in README.read_text(), "README zoo table is stale: paste `crmn-viz list --markdown`"
