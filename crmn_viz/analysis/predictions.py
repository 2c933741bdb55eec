"""Top-k class predictions with readable labels."""

from __future__ import annotations

import torch

from crmn_viz.analysis.inputs import ImageBatch, class_names_for, evaluation_mode, prepare_batch
from crmn_viz.models.base import TracedModel

__all__ = ["classify"]


def classify(model: TracedModel, images: ImageBatch, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``top_k`` most probable classes of every image, most probable first.

    The model runs in eval mode (BatchNorm running statistics, no dropout) under
    ``torch.no_grad()``; probabilities are the softmax of the logits.

    Args:
        model: a classifier (any architecture with ``task == "classification"``).
        images: a PIL image, a list of PIL images (preprocessed with the model's own
            preprocessor, see :func:`~crmn_viz.analysis.inputs.preprocessor_for`) or a
            normalised tensor [B, C, H, W].
        top_k: how many classes per image (capped at the number of classes).

    Returns:
        One list per image of ``(label, probability)`` pairs; labels come from
        ``model.card["class_names"]`` when present, else ``"class k"``.

    Raises:
        ValueError: a keypoint model, or ``top_k < 1``.
    """
    if model.task != "classification":
        raise ValueError(f"classify needs a classifier; this {model.arch} model predicts {model.task}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    batch = prepare_batch(model, images)
    with evaluation_mode(model), torch.no_grad():
        probabilities = torch.softmax(model(batch).float(), dim=-1).cpu()
    names = class_names_for(model)
    values, indices = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
    return [
        [(names[int(k)], float(p)) for p, k in zip(row_values, row_indices)]
        for row_values, row_indices in zip(values, indices)
    ]
