"""Turn what a user hands the analysis functions into model-ready batches.

Checkpoints from :func:`crmn_viz.load` carry a ``preprocess`` (a
:class:`~crmn_viz.preprocessing.Preprocessor` built from the model card); models made with
:func:`crmn_viz.create_model` do not. :func:`preprocessor_for` covers both, so every analysis
function accepts either kind of model and either PIL images or an already-normalised tensor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence

import torch
from PIL import Image

from crmn_viz.models.base import TracedModel
from crmn_viz.preprocessing import Preprocessor

__all__ = [
    "ImageBatch",
    "class_names_for",
    "evaluation_mode",
    "model_device",
    "prepare_batch",
    "preprocessor_for",
]

ImageBatch = Image.Image | Sequence[Image.Image] | torch.Tensor
"""One PIL image, a list of them, or a normalised tensor [B, C, H, W] (or [C, H, W])."""


def preprocessor_for(model: TracedModel) -> Preprocessor:
    """The :class:`Preprocessor` that turns PIL images into this model's inputs.

    Order of preference: the model's own ``model.preprocess`` (set by
    :func:`crmn_viz.load`); else one at the model's configured input size and channels with
    the mean/std of ``model.card["normalization"]`` when a card provides them, or mean 0 and
    std 1 (pixels only scaled to [0, 1]), which is what a freshly created model expects.

    Args:
        model: any crmn-viz model.

    Returns:
        A preprocessor producing [B, C, H, W] float32 at the model's input size.
    """
    attached = getattr(model, "preprocess", None)
    if isinstance(attached, Preprocessor):
        return attached
    channels, height, width = model.input_shape
    card = getattr(model, "card", None)
    normalization = card.get("normalization") if isinstance(card, Mapping) else None
    if isinstance(normalization, dict) and "mean" in normalization and "std" in normalization:
        mean, std = tuple(normalization["mean"]), tuple(normalization["std"])
    else:
        mean, std = (0.0,) * channels, (1.0,) * channels
    return Preprocessor((height, width), channels, mean, std)


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a parameter-free module)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    """Floating dtype of the model's first parameter (float32 for a parameter-free module)."""
    for parameter in model.parameters():
        return parameter.dtype
    return torch.float32


def prepare_batch(model: TracedModel, images: ImageBatch) -> torch.Tensor:
    """Normalised input batch on the model's device and in its dtype.

    Args:
        model: the model that will consume the batch.
        images: a PIL image, a sequence of PIL images (preprocessed with
            :func:`preprocessor_for`), or a tensor that is already normalised:
            [B, C, H, W] or a single [C, H, W].

    Returns:
        Tensor [B, C, H, W].

    Raises:
        ValueError: a tensor whose channel count or rank does not fit the model.
        TypeError: anything else.
    """
    if isinstance(images, torch.Tensor):
        batch = images.unsqueeze(0) if images.dim() == 3 else images
        if batch.dim() != 4:
            raise ValueError(
                f"expected an image tensor [B, C, H, W] or [C, H, W], got shape {tuple(images.shape)}"
            )
        channels = model.input_shape[0]
        if batch.shape[1] != channels:
            raise ValueError(
                f"the model expects {channels} input channel(s), the tensor has {batch.shape[1]}"
            )
    elif isinstance(images, Image.Image) or (
        isinstance(images, Sequence) and images and all(isinstance(i, Image.Image) for i in images)
    ):
        batch = preprocessor_for(model)(images)  # type: ignore[arg-type]
    else:
        raise TypeError(
            "images must be a PIL image, a non-empty list of PIL images or a normalised tensor "
            f"[B, C, H, W]; got {type(images).__name__}"
        )
    return batch.to(device=model_device(model), dtype=model_dtype(model))


def class_names_for(model: TracedModel) -> list[str]:
    """Class labels: ``model.card["class_names"]`` when present and complete, else ``"class k"``."""
    count = int(model.config.num_outputs)  # type: ignore[attr-defined]
    card = getattr(model, "card", None)
    names = card.get("class_names") if isinstance(card, Mapping) else None
    if isinstance(names, list) and len(names) == count:
        return [str(name) for name in names]
    return [f"class {k}" for k in range(count)]


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's previous mode.

    Analyses must see the deterministic network: BatchNorm with its running statistics
    and no dropout (ReNet applies dropout after every sweep in training mode).
    """
    training = [module for module in model.modules() if module.training]
    if training:  # a model already in eval mode (the usual case) is left untouched
        model.eval()
    try:
        yield model
    finally:
        for module in training:
            module.training = True
