"""``crmn-viz --help`` and every sub-command's ``--help`` print (argparse %-formats help strings)."""

from __future__ import annotations

import argparse

import pytest

from crmn_viz.frontends.cli import build_parser, main


def _subcommands() -> list[str]:
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


def test_top_level_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    printed = capsys.readouterr().out
    for name in _subcommands():
        assert name in printed


@pytest.mark.parametrize("name", _subcommands())
def test_every_subcommand_help_prints(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    assert f"crmn-viz {name}" in capsys.readouterr().out
