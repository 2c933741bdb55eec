"""The zip archive is opened and indexed once per process, and again only when the file changes."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crmn_viz.data import build_dataset, jpeg_archive
from crmn_viz.data.jpeg_archive import ArchiveSignature, ZipMemberReader, clear_archive_cache


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _write_archive(path: Path, members: list[str]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for index, member in enumerate(members):
            archive.writestr(member, _jpeg(20 * index))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, int]:
    """Counts of this test's zip files opened for reading, listed and indexed from now on
    (importlib also opens zip files, e.g. the standard library's, to find package metadata)."""
    clear_archive_cache()
    counts = {"open": 0, "namelist": 0, "index": 0}
    original_init, original_namelist = zipfile.ZipFile.__init__, zipfile.ZipFile.namelist
    original_index = jpeg_archive.index_image_folder

    def counting_init(self, file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        counts["open"] += mode == "r" and str(file).startswith(str(tmp_path))  # not the writing
        original_init(self, file, mode, *args, **kwargs)

    def counting_namelist(self):  # type: ignore[no-untyped-def]
        counts["namelist"] += str(self.filename).startswith(str(tmp_path))
        return original_namelist(self)

    def counting_index(*args, **kwargs):  # type: ignore[no-untyped-def]
        counts["index"] += 1
        return original_index(*args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting_init)
    monkeypatch.setattr(zipfile.ZipFile, "namelist", counting_namelist)
    monkeypatch.setattr(jpeg_archive, "index_image_folder", counting_index)
    yield counts
    clear_archive_cache()


def test_a_second_build_reuses_the_index_and_a_changed_file_is_indexed_again(
    tmp_path: Path, counted: dict[str, int]
) -> None:
    zip_path = tmp_path / "cifar10-jpeg.zip"
    _write_archive(zip_path, ["test/cat/0001.jpg", "test/dog/0002.jpg", "train/cat/0003.jpg"])
    first = build_dataset("cifar10", "test", data_dir=tmp_path)
    assert counted == {"open": 1, "namelist": 1, "index": 1}
    second = build_dataset("cifar10", "test", data_dir=tmp_path)
    assert first[0][0].shape == second[1][0].shape == (3, 32, 32)  # reads do not reopen the archive
    assert counted == {"open": 1, "namelist": 1, "index": 1}
    assert second.samples == first.samples == [("test/cat/0001.jpg", 0), ("test/dog/0002.jpg", 1)]
    build_dataset("cifar10", "train", data_dir=tmp_path)  # another split: indexed, not re-listed
    assert counted == {"open": 1, "namelist": 1, "index": 2}

    _write_archive(zip_path, ["test/cat/0001.jpg", "test/dog/0002.jpg", "test/dog/0004.jpg"])
    status = zip_path.stat()
    os.utime(zip_path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    changed = build_dataset("cifar10", "test", data_dir=tmp_path)
    assert counted == {"open": 2, "namelist": 2, "index": 3}
    assert [name for name, _ in changed.samples] == [
        "test/cat/0001.jpg",
        "test/dog/0002.jpg",
        "test/dog/0004.jpg",
    ]
    assert changed[2][0].shape == (3, 32, 32)


def test_signature_names_path_size_and_modification_time(tmp_path: Path, counted: dict[str, int]) -> None:
    zip_path = tmp_path / "a.zip"
    _write_archive(zip_path, ["test/cat/0001.jpg"])
    signature = ArchiveSignature.of(tmp_path / "." / "a.zip")
    assert signature.path == str(zip_path.resolve()) and signature.size == zip_path.stat().st_size
    assert ZipMemberReader(zip_path).signature() == signature
    assert signature.to_dict() == {
        "path": signature.path,
        "size": signature.size,
        "mtime_ns": signature.mtime_ns,
    }


def test_clear_archive_cache_closes_handles_and_readers_reopen(
    tmp_path: Path, counted: dict[str, int]
) -> None:
    zip_path = tmp_path / "a.zip"
    _write_archive(zip_path, ["test/cat/0001.jpg"])
    reader = ZipMemberReader(zip_path)
    expected = reader.read("test/cat/0001.jpg")
    clear_archive_cache()
    assert reader.read("test/cat/0001.jpg") == expected
    assert counted["open"] == 2
