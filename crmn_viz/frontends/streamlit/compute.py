"""Cached calls into the core library, shared fairly by every session of the server.

Models load once per process (``st.cache_resource``). View results are computed once per
(model, images, options) and kept in one byte-budgeted :class:`~crmn_viz.jobs.ResultCache`
(:data:`RESULTS`), keyed on the model's :func:`model_key` (architecture + the digests of the
weights and card bytes actually read, the same in every session; never a card's claim) and a
digest of the arguments (images as their canonical PNG bytes), so the cache keys on the pixels
themselves. Widgets that only change a display (opacity, units, which image) hit the cache and
never run the network again. Heavy work (attributions, checks, experiments, dataset passes,
export bundles) waits its turn in the process's one :class:`~crmn_viz.jobs.JobQueue`
(:data:`JOBS`); light work never waits behind it.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

import crmn_viz
from crmn_viz.checkpoints import checkpoint_key
from crmn_viz.figures import browser_available as _browser_available
from crmn_viz.inputs import uploads
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.jobs import (
    JobCancelled,
    JobQueue,
    ResultCache,
    ResultTooLarge,
    default_job_slots,
    lowered_priority,
)
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel
from crmn_viz.views import model_info
from crmn_viz.views.compute import HEAVY_WORK, PROGRESS_WORK, WORK, Compute, Result

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


def decode_upload(name: str, data: bytes, source: str = "upload") -> SelectedImage | str:
    """An uploaded image, or the error message that says why it was refused.

    Kept in :data:`RESULTS` (byte budget) by the digest of the bytes, the name and the source."""
    key = ("decode_upload", hashlib.sha256(data).hexdigest(), name, source)

    def decode() -> SelectedImage | str:
        result = uploads.decode_image_uploads([(name, data)], source=source)
        return result.images[0] if result.images else result.errors[0]

    try:
        return RESULTS.get_or_compute(key, decode)
    except ResultTooLarge as err:
        return f"{name}: refused, {err}"


# --------------------------------------------------------------------------- results


@st.cache_data(max_entries=32, show_spinner=False)
def summary(_model: TracedModel, key: str) -> model_info.ArchitectureSummary:
    """Architecture summary (one tiny forward pass)."""
    return model_info.architecture_summary(_model)


# --------------------------------------------------------------------------- heavy work and results

JOBS = JobQueue(default_job_slots())
"""The process's one queue of heavy work, shared by every session (:mod:`crmn_viz.jobs`)."""

RESULTS = ResultCache(LIMITS.max_result_cache_bytes)
"""Every view result of every session, by (work, :func:`model_key`, digest of the arguments),
within ``CRMN_VIZ_MAX_RESULT_CACHE_BYTES``."""

_MISSING = object()


def _request_key(work: Callable[..., Any], model: TracedModel, arguments: tuple[Any, ...]) -> tuple[str, ...]:
    """What a result is kept under: the work, the model's digests, and a digest of the arguments
    (the images' PNG bytes, options), so the key is the pixels and settings, never a file's claim."""
    digest = hashlib.sha256(pickle.dumps(arguments, protocol=5)).hexdigest()
    return (work.__qualname__, model_key(model), digest)


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    context = get_script_run_ctx()
    return context.session_id if context is not None else "no-session"


def _ask_cancel(flag: str) -> None:
    st.session_state[flag] = True


def cancel_flag(request: Any) -> str:
    """The session-state flag a request's Cancel button sets (the next run stops the request)."""
    return "crmn_viz_cancel_" + hashlib.sha256(repr(request).encode()).hexdigest()[:16]


def run_heavy(title: str, compute: Callable[[], Result], request: Any) -> Result:
    """Run ``compute`` in turn through :data:`JOBS`: while it waits the page says
    "waiting: N requests ahead" with a Cancel button; a cancelled request, or a result too large
    to keep, stops here with a message, and the queue runs on.

    Args:
        title: what is computed, e.g. "Computing the attribution…".
        compute: the work.
        request: a key of the request (names its Cancel button across reruns).
    """
    flag = cancel_flag(request)
    if st.session_state.pop(flag, False):
        st.warning("Cancelled. Change a setting (or press its button again) to ask once more.")
        st.stop()
    holder = st.empty()
    parts: dict[str, Any] = {}

    def waiting(ahead: int) -> None:
        if not parts:
            box = holder.container()
            parts["message"] = box.empty()
            box.button("Cancel", key=flag + "_button", on_click=_ask_cancel, args=(flag,))
        parts["message"].info(
            f"waiting: {ahead} request{'s' * (ahead != 1)} ahead ({title.rstrip('…')})",
            icon=":material/hourglass_top:",
        )

    try:
        with JOBS.slot(_session_id(), on_wait=waiting):
            holder.empty()
            with st.spinner(title or "Computing…"), lowered_priority():
                return compute()
    except JobCancelled as err:
        holder.empty()
        st.warning(f"{title.rstrip('…')}: {err}.")
        st.stop()
    except ResultTooLarge as err:
        holder.empty()
        st.error(f"The result is refused: {err}")
        st.stop()
    except (MemoryError, RuntimeError) as err:
        if not _out_of_memory(err):
            raise
        holder.empty()
        st.error(
            f"{title.rstrip('…')}: the server ran out of memory for this request ({err}). Ask for "
            "fewer images, steps or samples; other visitors' requests go on."
        )
        st.stop()
    raise AssertionError("unreachable")  # pragma: no cover  (st.stop raises)


def _out_of_memory(error: BaseException) -> bool:
    """A CPU or GPU allocation failure (PyTorch raises RuntimeError or torch.OutOfMemoryError)."""
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text


class CachedCompute(Compute):
    """The views' :class:`~crmn_viz.views.compute.Compute`, answered from :data:`RESULTS`.

    Every call is keyed on :func:`model_key` (digests of what was read) and a digest of the
    work's arguments (the images' PNG bytes), so a display-only change of any page reruns no
    network. Heavy work (:data:`~crmn_viz.views.compute.HEAVY_WORK`) waits its turn in
    :data:`JOBS`; light work runs at once.
    """

    def call(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """See :meth:`crmn_viz.views.compute.Compute.call`."""
        key = _request_key(work, model, arguments)
        found = RESULTS.get(key, _MISSING)
        if found is not _MISSING:
            return found

        def compute() -> Result:
            return RESULTS.get_or_compute(key, lambda: work(model, *arguments))

        if work in HEAVY_WORK:
            return run_heavy(WORK[work], compute, key)
        try:
            if WORK[work]:
                with st.spinner(WORK[work]):
                    return compute()
            return compute()
        except ResultTooLarge as err:
            st.error(f"The result is refused: {err}")
            st.stop()
        raise AssertionError("unreachable")  # pragma: no cover

    def call_with_progress(self, work: Callable[..., Result], model: TracedModel, *arguments: Any) -> Result:
        """Long work (:data:`~crmn_viz.views.compute.PROGRESS_WORK`): in turn, with a progress bar.

        The bar is drawn by this script run and moves while the work runs.
        """
        key = _request_key(work, model, arguments)
        found = RESULTS.get(key, _MISSING)
        if found is not _MISSING:
            return found
        title = PROGRESS_WORK[work]

        def compute() -> Result:
            bar = st.progress(0.0, text=title)

            def progress(done: int, total: int, label: str) -> None:
                bar.progress(min(done / max(total, 1), 1.0), text=f"{label}: {done} of {total}")

            try:
                return RESULTS.get_or_compute(key, lambda: work(model, *arguments, progress))
            finally:
                bar.empty()

        return run_heavy(title, compute, key)


CACHED = CachedCompute()
"""The one :class:`CachedCompute` the pages hand to the views."""
