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
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

import crmn_viz
from crmn_viz import analysis
from crmn_viz.checkpoints import checkpoint_key
from crmn_viz.figures import browser_available as _browser_available
from crmn_viz.inputs import uploads
from crmn_viz.inputs.selection import SelectedImage, decode_images
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel
from crmn_viz.views import model_info, test_images
from crmn_viz.views.compute import PROGRESS_WORK, WORK, Compute, Result

Pngs = tuple[bytes, ...]


# --------------------------------------------------------------------------- models


@st.cache_resource(show_spinner="Loading the checkpoint…", max_entries=8)
def zoo_model(path: str, fingerprint: str, device: str = "auto") -> TracedModel:
    """A zoo checkpoint, loaded once per process onto ``device`` (see :mod:`crmn_viz.devices`;
    ``fingerprint`` changes when the file does)."""
    del fingerprint  # part of the cache key only
    return crmn_viz.load(path, device=device)


@st.cache_resource(show_spinner="Checking and loading the uploaded checkpoint…", max_entries=4)
def uploaded_model(
    digest: str, _files: tuple[tuple[str, bytes], ...], device: str = "auto"
) -> uploads.UploadedCheckpoint:
    """An uploaded ``.safetensors`` + ``.json`` pair, loaded once per distinct content onto ``device``."""
    del digest
    return uploads.load_checkpoint_upload(list(_files), device=device)


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


# --------------------------------------------------------------------------- for the views


def _cached(work: Callable[..., Any], spinner: str) -> Callable[..., Any]:
    """``work`` as an ``st.cache_data`` function of ``(_model, key, *arguments)``."""

    def cached(_model: TracedModel, key: str, *arguments: Any) -> Any:
        del key  # the model's part of the cache key
        return work(_model, *arguments)

    cached.__qualname__ = cached.__name__ = f"cached{work.__name__}"  # one cache per work function
    return st.cache_data(cached, max_entries=32, show_spinner=spinner or False)


_CACHED_WORK = {work: _cached(work, spinner) for work, spinner in WORK.items()}


class CachedCompute(Compute):
    """The views' :class:`~crmn_viz.views.compute.Compute`, answered from ``st.cache_data``.

    Every call is keyed on :func:`model_key` (digests of what was read) and the work's hashable
    arguments (the images' PNG bytes), so a display-only change of any page reruns no network.
    """

    def call(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """See :meth:`crmn_viz.views.compute.Compute.call`."""
        return _CACHED_WORK[work](model, model_key(model), *arguments)

    def call_with_progress(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """Long work (:data:`~crmn_viz.views.compute.PROGRESS_WORK`) with a progress bar while it runs.

        Kept in :data:`_LONG_RESULTS`, not ``st.cache_data``: a cached function may not update an
        element drawn outside it, and the bar must move while the work runs. Keyed like the
        caches: the work, :func:`model_key` and the hashable arguments.
        """
        request = (work.__name__, model_key(model), arguments)
        with _LONG_RESULTS_LOCK:
            if request in _LONG_RESULTS:
                _LONG_RESULTS.move_to_end(request)
                return _LONG_RESULTS[request]
        title = PROGRESS_WORK[work]
        bar = st.progress(0.0, text=title)

        def progress(done: int, total: int, label: str) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"{label}: {done} of {total}")

        try:
            result = work(model, *arguments, progress)
        finally:
            bar.empty()
        with _LONG_RESULTS_LOCK:
            _LONG_RESULTS[request] = result
            while len(_LONG_RESULTS) > _LONG_RESULTS_KEPT:
                _LONG_RESULTS.popitem(last=False)
        return result


_LONG_RESULTS: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
"""Results of long work computed in this process, by (work, model key, arguments), newest last."""
_LONG_RESULTS_KEPT = 8
_LONG_RESULTS_LOCK = threading.Lock()


CACHED = CachedCompute()
"""The one :class:`CachedCompute` the pages hand to the views."""
