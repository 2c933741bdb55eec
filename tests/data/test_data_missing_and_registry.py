"""Data root resolution, dataset registry/info, and clear errors for missing data."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

from crmn_viz.data import (
    DATA_DIR_ENV_VAR,
    DatasetNotFoundError,
    build_dataset,
    dataset_info,
    list_datasets,
    resolve_data_dir,
)


def test_data_dir_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV_VAR, str(tmp_path / "from_env"))
    assert resolve_data_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert resolve_data_dir() == tmp_path / "from_env"
    monkeypatch.delenv(DATA_DIR_ENV_VAR)
    assert resolve_data_dir() == Path("data")


def test_registry_and_info_are_consistent() -> None:
    assert list_datasets() == ["cifar10", "cifar100", "svhn", "mnist", "faces68", "imagefolder"]
    expected = {
        "cifar10": (10, 3, (32, 32)),
        "cifar100": (100, 3, (32, 32)),
        "svhn": (10, 3, (32, 32)),
        "mnist": (10, 1, (28, 28)),
        "faces68": (136, 3, (80, 80)),
    }
    for name, (outputs, channels, size) in expected.items():
        info = dataset_info(name)
        assert (info.num_outputs, info.channels, info.input_size) == (outputs, channels, size)
        assert len(info.mean) == len(info.std) == channels
        assert all(0 < value < 1 for value in (*info.mean, *info.std))
        if info.class_names is not None:
            assert len(info.class_names) == outputs == len(set(info.class_names))
        json.dumps(info.to_dict())
    assert dataset_info("faces68", image_size=64).input_size == (64, 64)
    with pytest.raises(ValueError, match="Unknown dataset"):
        dataset_info("imagenet")
    with pytest.raises(ValueError, match="splits"):
        build_dataset("cifar10", "validation", data_dir=".")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "faces68"])
def test_missing_dataset_raises_helpful_error(name: str, empty_data_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as caught:
        build_dataset(name, "train", data_dir=empty_data_dir)
    message = str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert str(empty_data_dir) in message
    assert DATA_DIR_ENV_VAR in message and "download=True" in message


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse_lookup(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "network disabled in this test")

    def refuse_connect(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)


@pytest.mark.parametrize("name", ["cifar100", "svhn"])
def test_download_without_network_fails_fast_and_clearly(
    name: str, empty_data_dir: Path, no_network: None
) -> None:
    started = time.monotonic()
    with pytest.raises(DatasetNotFoundError, match="Download failed"):
        build_dataset(name, "test", data_dir=empty_data_dir, download=True)
    assert time.monotonic() - started < 20


def test_imagefolder_on_a_user_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_DIR_ENV_VAR, raising=False)
    for class_name, colour in [("cats", (255, 0, 0)), ("dogs", (0, 0, 255))]:
        folder = tmp_path / "train" / class_name
        folder.mkdir(parents=True)
        for index in range(2):
            Image.new("RGB", (48, 40), colour).save(folder / f"{index}.png")
    dataset = build_dataset("imagefolder", "train", data_dir=tmp_path, normalize=False)
    assert dataset.classes == ["cats", "dogs"]
    image, label = dataset[3]
    assert image.shape == (3, 32, 32) and label == 1
    info = dataset_info("imagefolder", data_dir=tmp_path)
    assert info.class_names == ("cats", "dogs") and info.num_outputs == 2
    with pytest.raises(DatasetNotFoundError):
        build_dataset("imagefolder", "train", data_dir=tmp_path / "nowhere")


def test_mnist_loads_offline(mnist_data_dir: Path) -> None:
    train = build_dataset("mnist", "train", data_dir=mnist_data_dir, train_augment=False, normalize=False)
    test = build_dataset("mnist", "test", data_dir=mnist_data_dir)
    assert len(train) == 60_000 and len(test) == 10_000
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert label == 5 and test[0][1] == 7  # first labels of the official files
    assert float(image.min()) >= 0 and float(image.max()) <= 1
    mean, std = dataset_info("mnist").mean[0], dataset_info("mnist").std[0]
    torch.testing.assert_close(
        build_dataset("mnist", "train", data_dir=mnist_data_dir, train_augment=False)[0][0],
        (image - mean) / std,
    )


def test_mnist_training_shift_is_at_most_two_pixels(mnist_data_dir: Path) -> None:
    torch.manual_seed(0)
    plain = build_dataset("mnist", "train", data_dir=mnist_data_dir, train_augment=False, normalize=False)
    shifted = build_dataset("mnist", "train", data_dir=mnist_data_dir, normalize=False)
    image = plain[1][0]
    padded = torch.nn.functional.pad(image, [2, 2, 2, 2])
    candidates = [padded[:, top : top + 28, left : left + 28] for top in range(5) for left in range(5)]
    for _ in range(10):
        output = shifted[1][0]
        assert any(torch.allclose(output, candidate, rtol=0, atol=1e-6) for candidate in candidates)
