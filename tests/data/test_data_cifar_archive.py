"""CIFAR-10 read straight from cifar10-jpeg.zip."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from crmn_viz.data import (
    ArchiveImageFolder,
    ZipMemberReader,
    build_dataset,
    classification_transform,
    dataset_info,
)

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _raw_dataset(data_dir: Path, split: str = "test") -> ArchiveImageFolder:
    dataset = build_dataset("cifar10", split, data_dir=data_dir, train_augment=False, normalize=False)
    assert isinstance(dataset, ArchiveImageFolder)
    return dataset


def _pil_decode(zip_path: Path, member: str) -> torch.Tensor:
    with zipfile.ZipFile(zip_path) as archive:
        image = Image.open(io.BytesIO(archive.read(member))).convert("RGB")
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255


def test_class_order_sizes_and_known_files(cifar_zip_data_dir: Path) -> None:
    test_set = _raw_dataset(cifar_zip_data_dir, "test")
    assert test_set.classes == CIFAR10_CLASSES
    assert list(dataset_info("cifar10").class_names) == CIFAR10_CLASSES
    assert len(test_set) == 10_000
    assert len(_raw_dataset(cifar_zip_data_dir, "train")) == 50_000
    zip_path = cifar_zip_data_dir / "cifar10-jpeg.zip"
    for member, label in [("test/airplane/0000.jpg", 0), ("test/truck/0005.jpg", 9)]:
        index = test_set.samples.index((member, label))
        image, got_label = test_set[index]
        assert got_label == label
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        torch.testing.assert_close(image, _pil_decode(zip_path, member), atol=3 / 255, rtol=0)


def test_normalised_output_uses_dataset_info(cifar_zip_data_dir: Path) -> None:
    info = dataset_info("cifar10")
    raw = _raw_dataset(cifar_zip_data_dir)
    normalised = build_dataset("cifar10", "test", data_dir=cifar_zip_data_dir)
    mean = torch.tensor(info.mean).view(3, 1, 1)
    std = torch.tensor(info.std).view(3, 1, 1)
    torch.testing.assert_close(normalised[7][0], (raw[7][0] - mean) / std)


def test_zip_is_read_in_place_not_extracted(
    cifar_zip_data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive must not be extracted")

    monkeypatch.setattr(zipfile.ZipFile, "extract", refuse)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", refuse)
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(cifar_zip_data_dir))
    dataset = _raw_dataset(cifar_zip_data_dir, "train")
    assert isinstance(dataset.reader, ZipMemberReader)
    for index in (0, 12_345, 49_999):
        dataset[index]
    assert sorted(os.listdir(cifar_zip_data_dir)) == before
    assert list(tmp_path.iterdir()) == []


def test_pickle_round_trip_reopens_the_archive(cifar_zip_data_dir: Path) -> None:
    dataset = _raw_dataset(cifar_zip_data_dir)
    first = dataset[3]  # opens the zip handle in this process
    state = pickle.dumps(dataset)
    assert b"ZipFile object" not in state
    clone = pickle.loads(state)
    torch.testing.assert_close(clone[3][0], first[0])
    assert clone[3][1] == first[1]


def test_forked_workers_read_same_images(cifar_zip_data_dir: Path) -> None:
    dataset = _raw_dataset(cifar_zip_data_dir)
    dataset[0]  # parent holds an open handle before the workers fork
    subset = Subset(dataset, range(0, 10_000, 250))
    expected = torch.stack([subset[i][0] for i in range(len(subset))])
    loader = DataLoader(subset, batch_size=8, num_workers=2)
    got = torch.cat([images for images, _ in loader])
    torch.testing.assert_close(got, expected)


def test_preload_matches_lazy_decoding(cifar_zip_data_dir: Path) -> None:
    lazy = _raw_dataset(cifar_zip_data_dir)
    preloaded = build_dataset(
        "cifar10",
        "test",
        data_dir=cifar_zip_data_dir,
        train_augment=False,
        normalize=False,
        preload=True,
    )
    assert preloaded.preloaded_images.shape == (10_000, 32, 32, 3)
    assert preloaded.preloaded_images.dtype == torch.uint8
    for index in (0, 4_321, 9_999):
        torch.testing.assert_close(preloaded[index][0], lazy[index][0])
        assert preloaded[index][1] == lazy[index][1]


def _pad_crop_flip_candidates(image: torch.Tensor, padding: int, flip: bool):
    padded = torch.nn.functional.pad(image, [padding] * 4)
    size = image.shape[-1]
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = padded[:, top : top + size, left : left + size]
            yield crop
            if flip:
                yield crop.flip(-1)


def _matches_some_candidate(output: torch.Tensor, image: torch.Tensor, padding: int, flip: bool) -> bool:
    return any(
        torch.allclose(output, candidate, rtol=0, atol=1e-6)
        for candidate in _pad_crop_flip_candidates(image, padding, flip)
    )


def test_cifar_train_augmentation_is_pad_crop_flip(cifar_zip_data_dir: Path) -> None:
    torch.manual_seed(0)
    augmented = build_dataset("cifar10", "train", data_dir=cifar_zip_data_dir, normalize=False)
    original = _raw_dataset(cifar_zip_data_dir, "train")
    image = original[17][0]
    outputs = [augmented[17][0] for _ in range(12)]
    assert all(_matches_some_candidate(out, image, 4, flip=True) for out in outputs)
    assert any(not torch.equal(out, image) for out in outputs)


def test_no_flip_recipe_never_mirrors() -> None:
    """SVHN/MNIST recipe: shifts only. An asymmetric image must never come back mirrored."""
    torch.manual_seed(1)
    image = torch.arange(3 * 32 * 32, dtype=torch.uint8).view(3, 32, 32)
    transform = classification_transform((32, 32), (0, 0, 0), (1, 1, 1), augment=True, padding=4, flip=False)
    reference = image.float() / 255
    for _ in range(20):
        output = transform(image)
        assert _matches_some_candidate(output, reference, 4, flip=False)
