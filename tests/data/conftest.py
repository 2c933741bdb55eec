"""Fixtures locating the shared offline data (skip cleanly when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_shared_data_dir() -> Path | None:
    """``$CRMN_VIZ_DATA_DIR`` if set, else ``<repo>/../shared/data`` if it exists."""
    from_environment = os.environ.get("CRMN_VIZ_DATA_DIR")
    candidate = Path(from_environment) if from_environment else REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    data_dir = find_shared_data_dir()
    if data_dir is None:
        pytest.skip("shared data not found (set CRMN_VIZ_DATA_DIR)")
    return data_dir


@pytest.fixture(scope="session")
def cifar_zip_data_dir(shared_data_dir: Path) -> Path:
    if not (shared_data_dir / "cifar10-jpeg.zip").is_file():
        pytest.skip("cifar10-jpeg.zip not in the shared data")
    return shared_data_dir


@pytest.fixture(scope="session")
def mnist_data_dir(shared_data_dir: Path) -> Path:
    if not (shared_data_dir / "mnist" / "MNIST" / "raw").is_dir():
        pytest.skip("mnist/MNIST/raw not in the shared data")
    return shared_data_dir


@pytest.fixture(scope="session")
def faces68_data_dir(shared_data_dir: Path) -> Path:
    if not (shared_data_dir / "faces68" / "test.csv").is_file():
        pytest.skip("faces68 not in the shared data")
    return shared_data_dir


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root, with the environment variable unset."""
    monkeypatch.delenv("CRMN_VIZ_DATA_DIR", raising=False)
    return tmp_path
