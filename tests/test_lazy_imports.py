"""Importing the library does not import torchvision or Captum: they load where they are used.

torchvision took 1.8 s of the app's 4.5 s of imports; it is needed only to build data sets, and
Captum only to compute attributions.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torchvision", "captum")


def imported_after(code: str) -> list[str]:
    """The heavy packages in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = f"{code}\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [name for name in result.stdout.strip().split(",") if name]


@pytest.mark.parametrize(
    "modules",
    [
        "crmn_viz",
        "crmn_viz.checkpoints",
        "crmn_viz.models",
        "crmn_viz.data",
        "crmn_viz.analysis, crmn_viz.analysis.keypoints, crmn_viz.analysis.attributions",
        "crmn_viz.figures",
    ],
)
def test_importing_loads_neither_torchvision_nor_captum(modules):
    assert imported_after(f"import {modules}") == []


def test_a_model_runs_without_either():
    code = (
        "import torch, crmn_viz\ncrmn_viz.create_model('crmn', depth=8, width=4)(torch.randn(1, 3, 32, 32))"
    )
    assert imported_after(code) == []


def test_building_a_transform_imports_torchvision():
    code = (
        "from crmn_viz.data import classification_transform\n"
        "classification_transform((32, 32), (0.5,), (0.2,), False)"
    )
    assert imported_after(code) == ["torchvision"]
