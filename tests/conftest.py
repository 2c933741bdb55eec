"""Shared fixtures: tiny configurations of every architecture (fast on a CPU).

The offline data: the package looks in ``$CRMN_VIZ_DATA_DIR``, else ``./data``; in this
project's development layout the data sits in ``../shared/data`` beside the repository, so when
the variable is unset and that folder exists, the tests point the variable at it (before any
test module reads it). Tests that need the data skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DEVELOPMENT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not os.environ.get("CRMN_VIZ_DATA_DIR") and DEVELOPMENT_DATA_DIR.is_dir():
    os.environ["CRMN_VIZ_DATA_DIR"] = str(DEVELOPMENT_DATA_DIR)

TINY_CONFIGS = {
    "resnet": {"depth": 8, "width": 4, "num_outputs": 5, "input_size": 16},
    "crmn": {"depth": 14, "width": 4, "hidden_size": 6, "num_outputs": 5, "input_size": 16},
    "renet": {
        "patch_sizes": [2, 2],
        "hidden_sizes": [4, 3],
        "fc_sizes": [8],
        "in_channels": 3,
        "input_size": 9,
        "num_outputs": 5,
    },
    "rir": {"widths": [4, 6], "blocks_per_stage": [1, 1], "num_outputs": 5, "input_size": 16},
}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_model(arch: str, **overrides: object):  # type: ignore[no-untyped-def]
    """A tiny, eval-mode model of ``arch``."""
    from crmn_viz import create_model

    return create_model(arch, **{**TINY_CONFIGS[arch], **overrides}).eval()


def random_input(model, batch: int = 2) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """A random batch matching the model's input shape."""
    return torch.randn(batch, *model.input_shape)
