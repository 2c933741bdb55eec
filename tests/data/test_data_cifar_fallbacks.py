"""CIFAR-10 without the zip: an extracted JPEG folder, or torchvision's pickled batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar
from PIL import Image

from crmn_viz.data import ArchiveImageFolder, DirectoryMemberReader, InMemoryImageDataset, build_dataset

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_extracted_jpeg_folder_is_used(empty_data_dir: Path) -> None:
    for class_name in ("cat", "airplane"):
        folder = empty_data_dir / "cifar10-jpeg" / "test" / class_name
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "0000.png")
    dataset = build_dataset("cifar10", "test", data_dir=empty_data_dir, normalize=False, preload=True)
    assert isinstance(dataset, ArchiveImageFolder)
    assert isinstance(dataset.reader, DirectoryMemberReader)
    assert dataset.classes == ["airplane", "cat"]  # sorted folder names
    image, label = dataset[1]
    assert label == 1 and image.shape == (3, 32, 32)
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([200, 10, 10]) / 255)


def _write_fake_torchvision_cifar10(root: Path, images_per_batch: int) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    test_images = rng.integers(0, 256, (images_per_batch, 3 * 32 * 32), dtype=np.uint8)
    batches = [f"data_batch_{index}" for index in range(1, 6)] + ["test_batch"]
    for name in batches:
        data = test_images if name == "test_batch" else np.zeros_like(test_images)
        labels = [index % 10 for index in range(images_per_batch)]
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CLASSES}))
    return test_images.reshape(-1, 3, 32, 32)


def test_torchvision_batches_fallback_with_and_without_preload(
    empty_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    expected = _write_fake_torchvision_cifar10(empty_data_dir, images_per_batch=4)
    lazy = build_dataset("cifar10", "test", data_dir=empty_data_dir, normalize=False)
    preloaded = build_dataset("cifar10", "test", data_dir=empty_data_dir, normalize=False, preload=True)
    assert isinstance(preloaded, InMemoryImageDataset)
    assert preloaded.preloaded_images.shape == (4, 32, 32, 3)
    assert preloaded.targets == [0, 1, 2, 3] and preloaded.classes == CLASSES
    for index in range(4):
        reference = torch.from_numpy(expected[index]).float() / 255
        torch.testing.assert_close(lazy[index][0], reference)
        torch.testing.assert_close(preloaded[index][0], reference)
        assert lazy[index][1] == preloaded[index][1] == index
