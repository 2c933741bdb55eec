"""Rebuild ``crmn_viz/gallery/`` from the offline data sets (reproducible: fixed seed, sorted input).

Usage::

    python -m crmn_viz.inputs.make_gallery [--data-dir ../shared/data] [--out crmn_viz/gallery]

The data root is ``--data-dir``, else ``$CRMN_VIZ_DATA_DIR``, else ``./data``
(:func:`crmn_viz.data.resolve_data_dir`). It needs ``cifar10-jpeg.zip`` (``test/<class>/NNNN.jpg``),
``mnist/MNIST/raw/t10k-*-ubyte`` and ``faces68/{test.csv,images/}``. Written:

* ``cifar10/<class>_<NNNN>.png``: ``per_class`` test images of every class (PNG of the decoded
  JPEG, 32 x 32);
* ``mnist/digit<d>_<index>.png``: ``per_class`` test digits of every class (28 x 28 grey);
* ``faces68/<name>.jpg``: ``faces`` test photos of different people, downscaled to at most
  256 px a side (JPEG quality 90), with ``faces68/keypoints.csv`` holding their 68 points
  rescaled to the shipped size; photos where OpenCV's face detector finds the face are
  preferred, so the app's detector works on them;
* ``index.csv``: ``file,dataset,label,source`` for :func:`crmn_viz.inputs.gallery.list_gallery`.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from crmn_viz.data.data_root import resolve_data_dir
from crmn_viz.inputs.gallery import GALLERY_DIR, INDEX_NAME, KEYPOINTS_NAME

__all__ = ["build_gallery", "main"]

SEED = 0
MAX_FACE_SIDE = 256
FACE_JPEG_QUALITY = 90
MAX_TOTAL_BYTES = 1_500_000


def _cifar10(data_dir: Path, out: Path, per_class: int, rng: random.Random) -> list[dict[str, str]]:
    archive = data_dir / "cifar10-jpeg.zip"
    rows = []
    with zipfile.ZipFile(archive) as handle:
        members: dict[str, list[str]] = {}
        for name in sorted(handle.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[0] == "test" and parts[2].endswith(".jpg"):
                members.setdefault(parts[1], []).append(name)
        for label in sorted(members):
            for member in sorted(rng.sample(members[label], per_class)):
                image = Image.open(io.BytesIO(handle.read(member))).convert("RGB")
                file = f"cifar10/{label}_{Path(member).stem}.png"
                image.save(out / file, optimize=True)
                rows.append({"file": file, "dataset": "cifar10", "label": label, "source": member})
    return rows


def _read_idx(path: Path) -> np.ndarray:
    data = path.read_bytes()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(dims))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def _mnist(data_dir: Path, out: Path, per_class: int, rng: random.Random) -> list[dict[str, str]]:
    raw = data_dir / "mnist" / "MNIST" / "raw"
    images = _read_idx(raw / "t10k-images-idx3-ubyte")
    labels = _read_idx(raw / "t10k-labels-idx1-ubyte")
    rows = []
    for digit in range(10):
        candidates = np.flatnonzero(labels == digit).tolist()
        for index in sorted(rng.sample(candidates, per_class)):
            file = f"mnist/digit{digit}_{index:05d}.png"
            Image.fromarray(images[index], mode="L").save(out / file, optimize=True)
            rows.append({"file": file, "dataset": "mnist", "label": str(digit), "source": f"t10k[{index}]"})
    return rows


def _face_detected(image: Image.Image) -> bool:
    try:
        from crmn_viz.analysis.keypoints import HaarFaceDetector
    except ImportError:  # the analysis package (or OpenCV) is not installed: accept every photo
        return True
    return bool(HaarFaceDetector()(np.asarray(image)))


def _faces68(data_dir: Path, out: Path, count: int, rng: random.Random) -> list[dict[str, str]]:
    root = data_dir / "faces68"
    with (root / "test.csv").open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        table = sorted(reader)
    by_person: dict[str, list[list[str]]] = {}
    for row in table:
        person = row[0][3:].rsplit("_", 1)[0]  # "te_Adam_Sandler_01.jpg" -> "Adam_Sandler"
        by_person.setdefault(person, []).append(row)
    people = sorted(by_person)
    rng.shuffle(people)
    rows, keypoint_rows = [], []
    for person in people:
        if len(rows) == count:
            break
        row = rng.choice(by_person[person])
        image = Image.open(root / "images" / row[0]).convert("RGB")
        scale = min(1.0, MAX_FACE_SIDE / max(image.size))
        if scale < 1.0:
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, Image.Resampling.LANCZOS)
        if not _face_detected(image):
            continue
        # Pixel-centre convention: a point at pixel centre p maps to (p + 0.5) * scale - 0.5.
        points = (np.asarray([float(v) for v in row[1:]]).reshape(-1, 2) + 0.5) * scale - 0.5
        file = f"faces68/{Path(row[0]).stem}.jpg"
        image.save(out / file, quality=FACE_JPEG_QUALITY, optimize=True)
        rows.append({"file": file, "dataset": "faces68", "label": person.replace("_", " "), "source": row[0]})
        keypoint_rows.append([Path(file).name, *(f"{v:.2f}" for v in points.ravel())])
    with (out / "faces68" / KEYPOINTS_NAME).open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(keypoint_rows)
    return rows


def build_gallery(
    data_dir: str | Path | None = None,
    out: str | Path = GALLERY_DIR,
    per_class: int = 1,
    faces: int = 6,
) -> list[dict[str, str]]:
    """Write the gallery and its index; returns the index rows.

    Args:
        data_dir: the offline data root (default: :func:`crmn_viz.data.resolve_data_dir`).
        out: destination folder (replaced data-set folders; other files are left alone).
        per_class: images per class for CIFAR-10 and MNIST.
        faces: number of face photos (one per person).

    Raises:
        FileNotFoundError: a data set is missing under ``data_dir``.
        RuntimeError: the gallery would exceed 1.5 MB.
    """
    source = resolve_data_dir(data_dir)
    target = Path(out)
    for folder in ("cifar10", "mnist", "faces68"):
        (target / folder).mkdir(parents=True, exist_ok=True)
        for old in (target / folder).iterdir():
            old.unlink()
    rows = [
        *_cifar10(source, target, per_class, random.Random(SEED)),
        *_mnist(source, target, per_class, random.Random(SEED)),
        *_faces68(source, target, faces, random.Random(SEED)),
    ]
    with (target / INDEX_NAME).open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle, fieldnames=["file", "dataset", "label", "source"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    total = sum(path.stat().st_size for path in target.rglob("*") if path.is_file())
    if total > MAX_TOTAL_BYTES:
        raise RuntimeError(f"the gallery takes {total:,} bytes, above the budget of {MAX_TOTAL_BYTES:,}")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="offline data root")
    parser.add_argument("--out", type=Path, default=GALLERY_DIR, help="gallery folder to (re)write")
    parser.add_argument("--per-class", type=int, default=1, help="CIFAR-10 / MNIST images per class")
    parser.add_argument("--faces", type=int, default=6, help="face photos")
    args = parser.parse_args(argv)
    rows = build_gallery(args.data_dir, args.out, args.per_class, args.faces)
    total = sum(path.stat().st_size for path in Path(args.out).rglob("*") if path.is_file())
    print(f"wrote {len(rows)} images to {args.out} ({total / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
