"""Views of what a network predicts: class probabilities, and a CRMN's prediction after every block."""

from __future__ import annotations

from collections.abc import Sequence

from crmn_viz.figures.readouts import plot_prediction_bar, plot_stepwise_probabilities
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = ["class_prediction", "stepwise_prediction"]


def class_prediction(
    model: TracedModel, images: Sequence[SelectedImage], index: int, top_k: int, compute: Compute
) -> tuple[list[tuple[str, float]], Shown]:
    """The ``top_k`` most probable classes of image ``index``: the ranking and its bar chart."""
    ranked = compute.classify(model, images, top_k)[index]
    labels, probabilities = zip(*ranked)
    image = images[index]
    return ranked, shown(
        f"prediction_{image.stem}", plot_prediction_bar(labels, probabilities), [image], top_k=top_k
    )


def stepwise_prediction(
    model: TracedModel, images: Sequence[SelectedImage], index: int, top_k: int, compute: Compute
) -> Shown:
    """The CRMN's output layer applied to its memory after every block (iterative inference)."""
    readout = compute.stepwise(model, images)
    figure = plot_stepwise_probabilities(
        readout.probabilities[index], readout.class_names, top_k=top_k, columns=2
    )
    image = images[index]
    return shown(f"stepwise_probabilities_{image.stem}", figure, [image], top_k=top_k)
