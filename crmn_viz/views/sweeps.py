"""Views of a ReNet (Visin et al. 2015): the four sweeps of a layer, its patch grid, and which
input pixels a patch's sweep outputs can see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from crmn_viz.figures.renet import plot_context_reach, plot_patch_grid, plot_sweep_maps
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = ["renet_context_reach", "renet_patch_grid", "renet_sweeps", "sweep_trace_names"]


def sweep_trace_names(model: TracedModel) -> tuple[str, ...]:
    """The trace names these views draw: every layer's sweeps and output (no gates), so only
    they come back from the model's device."""
    return tuple(
        f"layers.{layer}.{name}" for layer in range(model.block_count) for name in (*model.sweep_names, "out")
    )


def renet_sweeps(
    model: TracedModel,
    images: Sequence[SelectedImage],
    index: int,
    layer: int,
    mode: Literal["pca", "channels"],
    channels: int | None,
    compute: Compute,
) -> Shown:
    """The four sweeps (top-down, bottom-up, left-right, right-left) of ``layer`` for image ``index``."""
    trace = compute.trace(model, images, sweep_trace_names(model))
    image = images[index]
    figure = plot_sweep_maps(trace, layer, index, mode, channels)
    return shown(
        f"renet_sweeps_layer{layer}_{mode}_{image.stem}",
        figure,
        [image],
        layer=layer,
        mode=mode,
        channels=channels,
    )


def renet_patch_grid(model: TracedModel, image: SelectedImage, layer: int, compute: Compute) -> Shown:
    """The patch grid of ``layer`` over the image as the network sees it."""
    view = compute.model_view(model, image.png)
    patch_sizes = model.config.patch_sizes
    figure = plot_patch_grid(view, patch_sizes, layer)
    return shown(
        f"renet_patch_grid_layer{layer}_{image.stem}",
        figure,
        [image],
        layer=layer,
        patch_sizes=list(patch_sizes),
    )


def renet_context_reach(
    model: TracedModel,
    images: Sequence[SelectedImage],
    index: int,
    layer: int,
    row: int,
    col: int,
    compute: Compute,
) -> Shown:
    """Which input pixels can influence patch ``(row, col)``'s sweep outputs at ``layer``."""
    trace = compute.trace(model, images, sweep_trace_names(model))
    image = images[index]
    view = compute.model_view(model, image.png)
    figure = plot_context_reach(trace, layer, row, col, patch_sizes=model.config.patch_sizes, image=view)
    return shown(
        f"renet_context_layer{layer}_r{row}_c{col}_{image.stem}",
        figure,
        [image],
        layer=layer,
        patch_row=row,
        patch_column=col,
    )
