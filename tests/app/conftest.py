"""Fixtures for the app tests: a folder of tiny checkpoints of every architecture."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
RGB_NORM = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}

TINY_CHECKPOINTS = {
    "tiny-crmn": (
        "crmn",
        {"depth": 8, "width": 4, "hidden_size": 6, "num_outputs": 10, "input_size": 32},
        {"dataset": "cifar10", "class_names": CIFAR10_CLASSES, "normalization": RGB_NORM},
    ),
    "tiny-resnet": (
        "resnet",
        {"depth": 8, "width": 4, "num_outputs": 10, "input_size": 32},
        {"dataset": "cifar10", "class_names": CIFAR10_CLASSES, "normalization": RGB_NORM},
    ),
    "tiny-renet": (
        "renet",
        {
            "patch_sizes": [2, 2],
            "hidden_sizes": [4, 3],
            "fc_sizes": [8],
            "in_channels": 1,
            "input_size": 28,
            "num_outputs": 10,
        },
        {
            "dataset": "mnist",
            "class_names": [str(d) for d in range(10)],
            "normalization": {"mean": [0.13], "std": [0.31]},
        },
    ),
    "tiny-rir": (
        "rir",
        {"widths": [4, 6], "blocks_per_stage": [1, 1], "num_outputs": 10, "input_size": 32},
        {"dataset": "cifar10", "class_names": CIFAR10_CLASSES, "normalization": RGB_NORM},
    ),
    "tiny-faces": (
        "crmn",
        {
            "depth": 8,
            "width": 4,
            "hidden_size": 6,
            "num_outputs": 136,
            "input_size": 80,
            "pool": 4,
            "task": "keypoints",
            "shortcut": "B",
        },
        {"dataset": "faces68", "normalization": RGB_NORM},
    ),
}


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zoo folder with one tiny (untrained) checkpoint per architecture, plus a keypoint CRMN."""
    import torch

    import crmn_viz

    folder = tmp_path_factory.mktemp("zoo")
    for name, (arch, config, card) in TINY_CHECKPOINTS.items():
        torch.manual_seed(0)
        crmn_viz.save(crmn_viz.create_model(arch, **config).eval(), folder / name, **card)
    return folder


@pytest.fixture
def zoo(tiny_checkpoint_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the app at the tiny zoo."""
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(tiny_checkpoint_dir))
    return tiny_checkpoint_dir


def png_bytes(size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small valid PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()
