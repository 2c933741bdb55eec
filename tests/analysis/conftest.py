"""Fixtures for the analysis tests: tiny models with non-trivial statistics, faces68 photos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.conftest import tiny_model

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_KEYPOINT_CRMN = {
    "depth": 8,
    "width": 4,
    "hidden_size": 6,
    "num_outputs": 2 * 68,
    "input_size": 32,
    "pool": 4,
    "task": "keypoints",
}


def randomize_normalization(model: nn.Module, seed: int = 1) -> nn.Module:
    """Give BatchNorm layers and biases random values so that an untrained model is not
    degenerate (fresh BN statistics and zero biases map a zero image to exactly 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                count = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(count, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(count, generator=generator))
                module.bias.copy_(0.1 * torch.randn(count, generator=generator))
            elif isinstance(module, nn.Linear):
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return model


def tiny_analysis_model(arch: str, **overrides: object) -> nn.Module:
    """A tiny eval-mode model of ``arch`` with randomised normalisation statistics."""
    return randomize_normalization(tiny_model(arch, **overrides))


def tiny_keypoint_crmn() -> nn.Module:
    """A tiny, untrained 68-keypoint CRMN with 32 x 32 crops."""
    from crmn_viz import create_model

    return randomize_normalization(create_model("crmn", **TINY_KEYPOINT_CRMN).eval())


def find_faces68_dir() -> Path | None:
    """``$CRMN_VIZ_DATA_DIR/faces68`` or ``<repo>/../shared/data/faces68``, if present."""
    from_environment = os.environ.get("CRMN_VIZ_DATA_DIR")
    data_dir = Path(from_environment) if from_environment else REPO_ROOT.parent / "shared" / "data"
    folder = data_dir / "faces68"
    return folder if (folder / "test.csv").is_file() else None


@pytest.fixture(scope="session")
def faces68_dir() -> Path:
    folder = find_faces68_dir()
    if folder is None:
        pytest.skip("faces68 not found (set CRMN_VIZ_DATA_DIR to the shared data folder)")
    return folder
