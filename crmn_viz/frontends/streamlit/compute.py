"""Cached calls into the core library.

Models load once per process (``st.cache_resource``); results are computed once per
(model, images, options) (``st.cache_data``): the model is passed as an unhashed ``_model``
next to its ``model_key`` (architecture + the digests of the weights and card bytes actually
read, the same in every session; never a card's claim), and
images as their canonical PNG bytes, so the cache keys on the pixels themselves. Widgets
that only change a display (opacity, units, which image) hit these caches and never run
the network again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import streamlit as st

import crmn_viz
from crmn_viz import analysis
from crmn_viz.analysis import face_steps as faces_support
from crmn_viz.checkpoints import checkpoint_key
from crmn_viz.figures import browser_available as _browser_available
from crmn_viz.inputs import uploads
from crmn_viz.inputs.selection import SelectedImage, decode_images, encode_png
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel
from crmn_viz.views import model_info, running, test_images
from crmn_viz.views.compute import Box, TargetSpec, attribution_target

Pngs = tuple[bytes, ...]


# --------------------------------------------------------------------------- models


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=8)
def zoo_model(path: str, fingerprint: str) -> TracedModel:
    """A zoo checkpoint, loaded once per process (``fingerprint`` changes when the file does)."""
    del fingerprint  # part of the cache key only
    return crmn_viz.load(path)


@st.cache_resource(show_spinner="Checking and loading the uploaded checkpoint…", max_entries=4)
def uploaded_model(digest: str, _files: tuple[tuple[str, bytes], ...]) -> uploads.UploadedCheckpoint:
    """An uploaded ``.safetensors`` + ``.json`` pair, loaded once per distinct content."""
    del digest
    return uploads.load_checkpoint_upload(list(_files))


def files_digest(files: tuple[tuple[str, bytes], ...]) -> str:
    """Content key of uploaded files."""
    digest = hashlib.sha256()
    for name, data in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def zoo_fingerprint(path: Path) -> str:
    """Changes when a zoo checkpoint is rewritten (e.g. a training run finishes)."""
    stats = [p.stat() for p in (path.with_suffix(".json"), path.with_suffix(".safetensors"))]
    return ":".join(f"{s.st_size}-{s.st_mtime_ns}" for s in stats)


def model_key(model: TracedModel) -> str:
    """A session-independent cache key for a model, from the bytes that were read.

    :func:`crmn_viz.checkpoints.checkpoint_key`: the architecture and the SHA-256 digests of the
    weights and card files as :func:`crmn_viz.load` read them, never a digest the card claims.
    """
    return checkpoint_key(model)


@st.cache_resource
def browser_available() -> bool:
    """Whether Chromium is there for PNG/SVG/PDF export (checked once per process)."""
    return _browser_available()


# --------------------------------------------------------------------------- images


@st.cache_data(max_entries=128, show_spinner=False)
def decode_upload(name: str, data: bytes, source: str = "upload") -> SelectedImage | str:
    """An uploaded image, or the error message that says why it was refused."""
    result = uploads.decode_image_uploads([(name, data)], source=source)
    return result.images[0] if result.images else result.errors[0]


# --------------------------------------------------------------------------- results


@st.cache_data(max_entries=32, show_spinner=False)
def summary(_model: TracedModel, key: str) -> model_info.ArchitectureSummary:
    """Architecture summary (one tiny forward pass)."""
    return model_info.architecture_summary(_model)


@st.cache_data(max_entries=64, show_spinner="Classifying…")
def classify(_model: TracedModel, key: str, pngs: Pngs, top_k: int = 10) -> list[list[tuple[str, float]]]:
    """:func:`crmn_viz.analysis.classify` on the images."""
    return analysis.classify(_model, decode_images(pngs), top_k=top_k)


@st.cache_data(max_entries=32, show_spinner="Running the network…")
def trace(_model: TracedModel, key: str, pngs: Pngs, names: tuple[str, ...] | None = None) -> crmn_viz.Trace:
    """Every recorded internal (or only ``names``) for the images, on the CPU."""
    return running.trace_images(_model, decode_images(pngs), names)


@st.cache_data(max_entries=32, show_spinner="Decoding every LSTM step…")
def stepwise(_model: TracedModel, key: str, pngs: Pngs) -> analysis.StepwiseReadout:
    """:func:`crmn_viz.analysis.stepwise_readout` (CRMN)."""
    return analysis.stepwise_readout(_model, decode_images(pngs))


@st.cache_data(max_entries=32, show_spinner="Finding the face and its keypoints…")
def faces(
    _model: TracedModel, key: str, png: bytes, box: tuple[float, float, float, float] | None = None
) -> list[analysis.FaceKeypoints] | str:
    """:func:`crmn_viz.analysis.predict_faces`, or the message when no face is found."""
    try:
        return analysis.predict_faces(_model, decode_images([png])[0], box=box)
    except analysis.NoFaceFoundError as err:
        return str(err)


@st.cache_data(max_entries=48, show_spinner="Computing the attribution…")
def attribution(
    _model: TracedModel,
    key: str,
    png: bytes,
    method: str,
    target: TargetSpec,
    options: tuple[tuple[str, Any], ...] = (),
) -> analysis.AttributionResult:
    """:func:`crmn_viz.analysis.attribute` for one image."""
    return analysis.attribute(
        _model, decode_images([png])[0], method, attribution_target(target), **dict(options)
    )


@st.cache_data(max_entries=16, show_spinner="Collecting gate statistics…")
def gate_statistics_images(
    _model: TracedModel, key: str, pngs: Pngs, labels: tuple[int | None, ...]
) -> analysis.GateStatistics:
    """Gate statistics over chosen images, grouped by their true class when every label is known."""
    pictures = decode_images(pngs)
    items: Any = list(zip(pictures, labels)) if all(label is not None for label in labels) else pictures
    return analysis.gate_statistics(_model, items, by_class=True, progress=False, batch_size=64)


@st.cache_data(max_entries=8, show_spinner="Collecting gate statistics over test images…")
def gate_statistics_test(_model: TracedModel, key: str, dataset: str, count: int) -> analysis.GateStatistics:
    """Gate statistics over ``count`` test images of ``dataset`` spread over every class."""
    subset = test_images.test_subset(dataset, min(count, LIMITS.max_statistics_images))
    return analysis.gate_statistics(
        _model, subset, by_class=True, progress=False, batch_size=100, max_images=LIMITS.max_statistics_images
    )


@st.cache_data(max_entries=32, show_spinner="Reading the face after every block…")
def face_steps(
    _model: TracedModel, key: str, png: bytes, face_index: int, box: tuple[float, ...] | None, truth: Any
) -> faces_support.FaceSteps | None:
    """Per-step keypoints of one face (``truth``: ground-truth points [K, 2] or None)."""
    found = faces(_model, key, png, box)
    if isinstance(found, str) or face_index >= len(found):
        return None
    return faces_support.face_steps(_model, decode_images([png])[0], found[face_index], truth)


@st.cache_data(max_entries=64, show_spinner=False)
def model_view(_model: TracedModel, key: str, png: bytes) -> Any:
    """The image at the network's input size and colour mode (RGB uint8 array)."""
    return running.model_view(_model, decode_images([png])[0])


@st.cache_data(max_entries=64, show_spinner=False)
def face_crop(
    _model: TracedModel, key: str, png: bytes, box: tuple[float, ...] | None = None
) -> bytes | None:
    """The first face's crop at the model's input size, as PNG bytes (None when no face is found)."""
    found = faces(_model, key, png, box)
    if isinstance(found, str):
        return None
    _, height, width = _model.input_shape
    return encode_png(faces_support.face_crop(decode_images([png])[0], found[0].crop_box, (height, width)))


# --------------------------------------------------------------------------- for the views


class CachedCompute:
    """The views' :class:`~crmn_viz.views.compute.Compute`, answered by this module's caches.

    Every call is keyed on :func:`model_key` (digests of what was read) and the images' bytes,
    so a display-only change of any page reruns no network.
    """

    def trace(
        self, model: TracedModel, images: Sequence[SelectedImage], names: Sequence[str] | None = None
    ) -> crmn_viz.Trace:
        """See :meth:`crmn_viz.views.compute.Compute.trace`."""
        pngs = tuple(image.png for image in images)
        return trace(model, model_key(model), pngs, None if names is None else tuple(names))

    def classify(
        self, model: TracedModel, images: Sequence[SelectedImage], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """See :meth:`crmn_viz.views.compute.Compute.classify`."""
        return classify(model, model_key(model), tuple(image.png for image in images), top_k)

    def stepwise(self, model: TracedModel, images: Sequence[SelectedImage]) -> analysis.StepwiseReadout:
        """See :meth:`crmn_viz.views.compute.Compute.stepwise`."""
        return stepwise(model, model_key(model), tuple(image.png for image in images))

    def faces(
        self, model: TracedModel, image: SelectedImage, box: Box | None
    ) -> list[analysis.FaceKeypoints] | str:
        """See :meth:`crmn_viz.views.compute.Compute.faces`."""
        return faces(model, model_key(model), image.png, box)

    def face_steps(
        self, model: TracedModel, image: SelectedImage, face_index: int, box: Box | None
    ) -> faces_support.FaceSteps | None:
        """See :meth:`crmn_viz.views.compute.Compute.face_steps`."""
        return face_steps(model, model_key(model), image.png, face_index, box, image.keypoints)

    def face_crop(self, model: TracedModel, image: SelectedImage, box: Box | None) -> bytes | None:
        """See :meth:`crmn_viz.views.compute.Compute.face_crop`."""
        return face_crop(model, model_key(model), image.png, box)

    def model_view(self, model: TracedModel, png: bytes) -> Any:
        """See :meth:`crmn_viz.views.compute.Compute.model_view`."""
        return model_view(model, model_key(model), png)

    def attribution(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
    ) -> analysis.AttributionResult:
        """See :meth:`crmn_viz.views.compute.Compute.attribution`."""
        return attribution(model, model_key(model), png, method, target, options)


CACHED = CachedCompute()
"""The one :class:`CachedCompute` the pages hand to the views."""
