"""The attribution view: which input pixels move one number of the network (Captum methods)."""

from __future__ import annotations

from typing import Any

from crmn_viz.figures.overlays import plot_attribution_overlay
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute, TargetSpec
from crmn_viz.views.shown import Shown, shown

__all__ = ["METHOD_LABELS", "attribution_view", "explained_picture"]

METHOD_LABELS = {
    "saliency": "Saliency (gradient)",
    "integrated_gradients": "Integrated gradients",
    "gradient_shap": "Gradient SHAP",
    "occlusion": "Occlusion",
    "gradcam": "Grad-CAM",
}
"""Readable names of the attribution methods, for every front end."""


def explained_picture(model: TracedModel, image: SelectedImage, compute: Compute) -> tuple[bytes, str]:
    """The picture an attribution explains, as PNG bytes, and what it is.

    A keypoint network explains the face crop it sees (found by the detector); without a face,
    or for a classifier, the whole image at the network's input.
    """
    if model.task == "keypoints":
        crop = compute.face_crop(model, image, None)
        if crop is not None:
            return crop, "face crop"
    return image.png, "whole image"


def attribution_view(
    model: TracedModel,
    image: SelectedImage,
    method: str,
    target: TargetSpec,
    options: tuple[tuple[str, Any], ...],
    compute: Compute,
    *,
    opacity: float = 0.6,
    signed: bool = True,
) -> tuple[Any, Shown]:
    """One method's attribution map for ``target``, over the picture it explains.

    Returns:
        The :class:`~crmn_viz.analysis.AttributionResult` and its overlay figure.

    Raises:
        ValueError: the method cannot explain this target (the message says why).
    """
    png, explained = explained_picture(model, image, compute)
    result = compute.attribution(model, png, method, target, options)
    view = compute.model_view(model, png)
    signed = signed and method != "gradcam"
    figure = plot_attribution_overlay(
        view,
        result.map,
        opacity,
        signed,
        METHOD_LABELS.get(method, method),
        target=str(result.target),
        target_value=result.target_value,
    )
    figure_shown = shown(
        f"attribution_{method}_{image.stem}",
        figure,
        [image],
        method=method,
        method_options=dict(options),
        target=str(result.target),
        target_spec=list(target),
        explained=explained,
        opacity=opacity,
        signed=signed,
    )
    return result, figure_shown
