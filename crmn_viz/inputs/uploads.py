"""Uploaded files: images decoded safely, checkpoint pairs staged in a private temporary folder.

Nothing here knows about a particular web framework: a front end hands over ``(file name,
bytes)`` pairs and gets back images, models, or an error whose message can be shown as is.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crmn_viz.checkpoints import MAX_CARD_BYTES, CheckpointError, load
from crmn_viz.images import ImageLimits, InvalidImageError
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel

__all__ = [
    "MAX_CHECKPOINT_BYTES",
    "MAX_IMAGES_PER_UPLOAD",
    "UPLOAD_IMAGE_LIMITS",
    "ImageUploadResult",
    "UploadedCheckpoint",
    "checkpoint_display_name",
    "decode_image_uploads",
    "load_checkpoint_upload",
]

MAX_CHECKPOINT_BYTES = LIMITS.max_checkpoint_bytes
"""Largest uploaded weights file (bytes; default 300 MiB, ``CRMN_VIZ_MAX_CHECKPOINT_BYTES``); the zoo
models are a few MB."""
UPLOAD_IMAGE_LIMITS = LIMITS.upload_image_limits()
"""Limits for uploaded photos (default 25 megapixels, 15 MiB: ``CRMN_VIZ_MAX_UPLOAD_PIXELS``,
``CRMN_VIZ_MAX_UPLOAD_BYTES``, ``CRMN_VIZ_MAX_ASPECT_RATIO``)."""
MAX_IMAGES_PER_UPLOAD = LIMITS.max_images_per_request
"""At most this many images are analysed from one upload (default 32,
``CRMN_VIZ_MAX_IMAGES_PER_REQUEST``); the rest are refused with a message."""

FilePair = tuple[str, bytes]
"""An uploaded file: (its name as the browser sent it, its bytes)."""


@dataclass(frozen=True)
class ImageUploadResult:
    """What became of a batch of uploaded images.

    Attributes:
        images: the images that decoded, in upload order.
        errors: one readable message per refused file (starting with its name).
    """

    images: list[SelectedImage]
    errors: list[str]


def _safe_display_name(name: str, fallback: str) -> str:
    stem = Path(name.replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.\- ]", "_", stem).strip()[:80]
    return cleaned or fallback


def decode_image_uploads(
    files: Iterable[FilePair], limits: ImageLimits = UPLOAD_IMAGE_LIMITS, source: str = "upload"
) -> ImageUploadResult:
    """Decode uploaded image files with :func:`crmn_viz.images.load_image`.

    A file that is not an image, is damaged or is too big does not stop the others: its
    :class:`~crmn_viz.images.InvalidImageError` message is returned in ``errors``.

    Args:
        files: ``(name, bytes)`` pairs.
        limits: size limits for each image.
        source: recorded on every image (``"upload"`` or ``"camera"``).

    Returns:
        An :class:`ImageUploadResult`.
    """
    images: list[SelectedImage] = []
    errors: list[str] = []
    for position, (name, data) in enumerate(files):
        label = _safe_display_name(name, f"image {position + 1}")
        if len(images) >= MAX_IMAGES_PER_UPLOAD:
            errors.append(f"{label}: skipped, at most {MAX_IMAGES_PER_UPLOAD} images are analysed at once.")
            continue
        try:
            images.append(SelectedImage.from_bytes(label, data, source=source, limits=limits))
        except InvalidImageError as err:
            errors.append(f"{label}: {err}")
    return ImageUploadResult(images, errors)


@dataclass(frozen=True)
class UploadedCheckpoint:
    """A checkpoint loaded from an upload.

    Attributes:
        model: the loaded model (eval mode, with ``card`` and ``preprocess``).
        name: a display name derived from the weights file name.
    """

    model: TracedModel
    name: str


def checkpoint_display_name(files: Sequence[FilePair]) -> str:
    """Display name of an uploaded pair: the weights file's stem, made safe."""
    for name, _ in files:
        if name.lower().endswith(".safetensors"):
            return _safe_display_name(name[: -len(".safetensors")], "uploaded checkpoint")
    return "uploaded checkpoint"


def _split_pair(files: Sequence[FilePair], max_bytes: int) -> tuple[bytes, bytes]:
    weights = [(n, d) for n, d in files if n.lower().endswith(".safetensors")]
    cards = [(n, d) for n, d in files if n.lower().endswith(".json")]
    others = [n for n, _ in files if not n.lower().endswith((".safetensors", ".json"))]
    if others:
        raise CheckpointError(
            f"{', '.join(_safe_display_name(n, '?') for n in others)}: only a .safetensors weights file and "
            "its .json model card are accepted (pickled .pt/.pth/.ckpt files are never loaded)"
        )
    if len(weights) != 1 or len(cards) != 1:
        raise CheckpointError(
            "upload exactly two files: the weights (name.safetensors) and the model card (name.json); "
            f"got {len(weights)} weights file(s) and {len(cards)} card(s)"
        )
    if len(weights[0][1]) > max_bytes:
        raise CheckpointError(
            f"the weights file is {len(weights[0][1]) / 2**20:.0f} MB, above the upload limit of "
            f"{max_bytes / 2**20:.0f} MB"
        )
    if len(cards[0][1]) > MAX_CARD_BYTES:
        raise CheckpointError(f"the model card is larger than {MAX_CARD_BYTES:,} bytes")
    return weights[0][1], cards[0][1]


def load_checkpoint_upload(
    files: Sequence[FilePair], device: str = "auto", max_bytes: int = MAX_CHECKPOINT_BYTES
) -> UploadedCheckpoint:
    """Load an uploaded ``.safetensors`` + ``.json`` pair with :func:`crmn_viz.load`.

    The bytes are written under fixed names (never the uploaded names) into a private
    temporary folder (mode 0700) that is removed as soon as the weights are in memory;
    :func:`crmn_viz.load` then validates the card, the header and every tensor shape.

    Args:
        files: the uploaded ``(name, bytes)`` pairs: exactly one ``.safetensors`` and one ``.json``.
        device: where the model goes (``"auto"``: CUDA when present).
        max_bytes: largest accepted weights file.

    Returns:
        An :class:`UploadedCheckpoint`.

    Raises:
        CheckpointError: wrong files, too large, or a checkpoint :func:`crmn_viz.load` refuses.
    """
    weights, card = _split_pair(files, max_bytes)
    with tempfile.TemporaryDirectory(prefix="crmn-viz-upload-") as folder:
        base = Path(folder) / "checkpoint"
        base.with_suffix(".safetensors").write_bytes(weights)
        base.with_suffix(".json").write_bytes(card)
        model = load(base, device=device, max_bytes=max_bytes)
    name = checkpoint_display_name(files)
    model.checkpoint = dataclasses.replace(model.checkpoint, name=name)  # type: ignore[attr-defined]
    return UploadedCheckpoint(model, name)
