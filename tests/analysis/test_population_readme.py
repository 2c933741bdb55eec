"""The README's population numbers are what the commands it names print (slow: whole test set)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crmn_viz.data import DatasetNotFoundError, build_dataset
from crmn_viz.frontends import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name_a", "name_b"),
    [("crmn-cifar10", "resnet-cifar10"), ("crmn32-cifar10", "resnet32-cifar10")],
)
def test_the_readme_pair_table_is_what_compare_prints(name_a: str, name_b: str, tmp_path: Path) -> None:
    try:
        build_dataset("cifar10", "test")
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 is not on this machine")
    out = tmp_path / "compare.json"
    assert cli.main(["compare", name_a, name_b, "--images", "0", "--json", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    row = next(line for line in README.splitlines() if line.startswith(f"| `{name_a}` / `{name_b}`"))
    numbers = [float(value) for value in re.findall(r"[-+]?\d+\.\d+", row)]
    low, high = result["accuracy_difference_ci"]
    assert numbers[:2] == [round(100 * result["accuracy_a"], 2), round(100 * result["accuracy_b"], 2)]
    assert numbers[2:5] == [
        round(100 * result["accuracy_difference"], 2),
        round(100 * low, 2),
        round(100 * high, 2),
    ]
    assert numbers[-1] == round(100 * result["agreement"], 1)
