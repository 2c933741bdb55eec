"""Run a model on chosen images and describe where it runs (glue over :mod:`crmn_viz.analysis`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from crmn_viz import devices
from crmn_viz.analysis.inputs import evaluation_mode, model_device, prepare_batch, preprocessor_for
from crmn_viz.models.base import TracedModel
from crmn_viz.tracing import Trace

__all__ = ["describe_device", "model_view", "trace_images", "trace_shapes"]


def describe_device(model: TracedModel) -> str:
    """Where the model runs, for people: ``"CUDA (NVIDIA H100 80GB HBM3)"`` or ``"CPU"``."""
    return devices.describe_device(model_device(model))


def trace_images(
    model: TracedModel, images: Sequence[Image.Image], names: Iterable[str] | None = None
) -> Trace:
    """Run ``model`` once on ``images`` and return the recorded internals on the CPU.

    Eval mode (BatchNorm running statistics, no dropout), no gradients; the model's own
    preprocessing is applied (:func:`crmn_viz.analysis.prepare_batch`).

    Args:
        model: any crmn-viz model.
        images: RGB pictures (any size: they are resized to the model's input).
        names: trace names to keep (default: every probe, the output included).

    Returns:
        A :class:`~crmn_viz.tracing.Trace` of CPU tensors with batch dimension ``len(images)``.
    """
    batch = prepare_batch(model, list(images))
    with evaluation_mode(model), torch.no_grad():
        _, trace = model.run_with_trace(
            batch, names=None if names is None else list(names), store_device="cpu"
        )
    return trace


def trace_shapes(model: TracedModel) -> dict[str, tuple[int, ...]]:
    """Shape of every trace name for one input image (batch dimension dropped)."""
    channels, height, width = model.input_shape
    picture = Image.new("L" if channels == 1 else "RGB", (width, height))
    trace = trace_images(model, [picture])
    return {name: tuple(tensor.shape[1:]) for name, tensor in trace.items()}


def model_view(model: TracedModel, picture: Image.Image) -> np.ndarray:
    """The picture as the network sees it (resized to its input, grey for grey models), RGB uint8.

    Returns:
        [H, W, 3] uint8 at the model's input size, undoing the normalisation of the model's
        own preprocessing (:func:`crmn_viz.analysis.preprocessor_for`).
    """
    preprocess = preprocessor_for(model)
    pixels = preprocess.denormalize(preprocess([picture]))[0]
    array = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return np.repeat(array, 3, axis=2) if array.shape[2] == 1 else array.copy()
