"""Test data for the population front ends: a small fake CIFAR-10 archive and a tiny zoo.

The archive has the layout of the shared ``cifar10-jpeg.zip`` (``test/<class>/<NNNN>.jpg``,
``train/<class>/<NNNN>.jpg``) with a few random 32 x 32 JPEGs per class, so a test reads it in
milliseconds (the real archive's index takes seconds to build). The zoo holds a tiny CRMN and a
tiny ResNet trained "alike" (the same recipe on their cards, so ``zoo_pairs`` pairs them), a tiny
ReNet and a tiny keypoint CRMN.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import crmn_viz
from crmn_viz.data import dataset_info

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_INFO = dataset_info("cifar10")
CIFAR10_NORMALIZATION = {"mean": list(_INFO.mean), "std": list(_INFO.std)}
"""The data set's own mean/std: the population pass feeds the data set's tensors as they are."""

RECIPE = {"epochs": 2, "lr": 0.05, "batch_size": 16}
"""One recipe on both cards of the pair (``zoo_pairs`` matches the recipes)."""


def write_fake_cifar10(folder: Path, test_per_class: int = 3, train_per_class: int = 4) -> Path:
    """``folder/cifar10-jpeg.zip`` with random JPEGs; returns ``folder`` (a data root)."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / "cifar10-jpeg.zip", "w") as archive:
        for split, count in (("test", test_per_class), ("train", train_per_class)):
            for label, name in enumerate(CIFAR10_CLASSES):
                for index in range(count):
                    # a class-dependent tint, so classes differ a little
                    pixels = rng.integers(0, 200, (32, 32, 3)) + np.array([label * 5, 0, 50 - label * 5])
                    buffer = io.BytesIO()
                    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
                    archive.writestr(f"{split}/{name}/{index:04d}.jpg", buffer.getvalue())
    return folder


def write_tiny_zoo(folder: Path) -> Path:
    """A zoo folder: ``tiny-crmn`` and ``tiny-resnet`` (a pair), ``tiny-renet``, ``tiny-faces``."""
    from tests.conftest import tiny_model

    folder.mkdir(parents=True, exist_ok=True)
    card = {
        "dataset": "cifar10",
        "class_names": CIFAR10_CLASSES,
        "normalization": CIFAR10_NORMALIZATION,
        "training": {"recipe": RECIPE},
    }
    for name, arch, config in (
        ("tiny-crmn", "crmn", {"depth": 8, "num_outputs": 10, "input_size": 32}),
        ("tiny-resnet", "resnet", {"depth": 8, "num_outputs": 10, "input_size": 32}),
    ):
        torch.manual_seed(1)
        crmn_viz.save(tiny_model(arch, **config), folder / name, **card)
    torch.manual_seed(1)
    crmn_viz.save(
        tiny_model("renet", num_outputs=10, input_size=32),
        folder / "tiny-renet",
        dataset="cifar10",
        class_names=CIFAR10_CLASSES,
        normalization=CIFAR10_NORMALIZATION,
    )
    torch.manual_seed(1)
    crmn_viz.save(
        tiny_model("crmn", task="keypoints", num_outputs=136, pool=4, input_size=80),
        folder / "tiny-faces",
        dataset="faces68",
        normalization=CIFAR10_NORMALIZATION,
    )
    return folder


def write_training_log(folder: Path, name: str, epochs: int = 3) -> Path:
    """``folder/<name>.jsonl``: a short training log in the format ``crmn-viz train`` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "epoch": epoch,
                "train_loss": 2.0 / epoch,
                "lr": 0.05,
                "epoch_time_s": 1.0,
                "train_accuracy": 0.1 * epoch,
                "test_accuracy": 0.1 * epoch,
            }
        )
        for epoch in range(1, epochs + 1)
    ]
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def fake_test_images(data_dir: Path, count: int) -> tuple[list[str], torch.Tensor, np.ndarray]:
    """The ``count`` test images the package spreads over the fake archive's test split, read here
    with ``zipfile`` and PIL: (member names, tensors normalised with the data set's mean/std
    ``[N, 3, 32, 32]``, labels ``[N]``), independently of the package's loaders."""
    with zipfile.ZipFile(data_dir / "cifar10-jpeg.zip") as archive:
        members = sorted(
            (name for name in archive.namelist() if name.startswith("test/") and name.endswith(".jpg")),
            key=lambda name: (CIFAR10_CLASSES.index(name.split("/")[1]), name),
        )
        chosen = [members[round(k * len(members) / count)] for k in range(count)]
        pixels = np.stack(
            [np.asarray(Image.open(io.BytesIO(archive.read(name))).convert("RGB")) for name in chosen]
        )
    mean, std = np.asarray(_INFO.mean), np.asarray(_INFO.std)
    normalised = ((pixels / 255.0 - mean) / std).astype(np.float32)
    labels = np.array([CIFAR10_CLASSES.index(name.split("/")[1]) for name in chosen])
    return chosen, torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous(), labels
