"""What the Streamlit server does once, as it starts: load the default checkpoint, warm the first page.

``streamlit run app.py`` finds the :class:`streamlit.App` that ``app.py`` builds when the server
imports it, and serves ``app.py`` itself as the script of every session. Its :func:`lifespan`
runs before the server accepts a connection: it sets PyTorch's threads for the server's job
queue (:func:`crmn_viz.jobs.configure_threads`), imports the figure stack and loads the zoo's
default checkpoint (the sidebar's first entry) into the process-wide model cache
(:func:`crmn_viz.frontends.streamlit.compute.zoo_model`) on the device the sidebar will use, and
computes the Overview page's views for the sidebar's default images into the shared result
caches, so the first visitor's page waits for none of it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

__all__ = ["lifespan", "load_default_checkpoint"]

LOGGER = logging.getLogger(__name__)


def load_default_checkpoint() -> str | None:
    """Load the zoo's first checkpoint into the model cache and compute the Overview's views.

    Returns:
        Its name, or None when the zoo is empty. A checkpoint that does not load is logged and
        left to the sidebar, which shows the visitor why.
    """
    import crmn_viz.figures  # noqa: F401  (plotly and the paper template, imported once)
    from crmn_viz.checkpoints import CheckpointError, checkpoint_dir, list_checkpoints
    from crmn_viz.devices import DeviceError, select_device
    from crmn_viz.frontends.streamlit import compute

    folder = checkpoint_dir()
    entries = list_checkpoints(folder)
    if not entries:
        return None
    name = entries[0]["name"]
    path = folder / name
    try:
        device = str(select_device())
        model = compute.zoo_model(str(path), compute.zoo_fingerprint(path), device)
    except (CheckpointError, DeviceError) as err:
        LOGGER.warning("crmn-viz: the default checkpoint %s was not preloaded: %s", name, err)
        return None
    from crmn_viz.frontends.streamlit import state  # the frame's modules, imported once
    from crmn_viz.views import faces, prediction

    images = state.default_gallery_images(model.card.dataset)
    if images:  # what the Overview page asks the cached Compute for first
        if model.task == "keypoints":
            faces.face_keypoints(model, images[0], None, compute.CACHED)
        else:
            prediction.class_prediction(model, images, 0, 10, compute.CACHED)
        if model.has_stepwise_readout and model.task != "keypoints":
            prediction.stepwise_prediction(model, images, 0, 5, compute.CACHED)
    return name


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    """The :class:`streamlit.App` lifespan: preload before serving, nothing to undo after."""
    del app
    from crmn_viz.frontends.streamlit.compute import JOBS
    from crmn_viz.jobs import configure_threads

    threads = configure_threads(JOBS.slots)  # once per process, before any job runs
    LOGGER.info("crmn-viz: %d heavy job(s) at once, %d torch thread(s) each", JOBS.slots, threads)
    name = load_default_checkpoint()
    LOGGER.info("crmn-viz: default checkpoint %s loaded", name)
    yield {"default_checkpoint": name}
