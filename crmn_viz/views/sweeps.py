"""Views of a ReNet (Visin et al. 2015): the four sweeps of a layer, its patch grid, which
input pixels a patch's sweep outputs can see, and the gates of the sweeps' RNNs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from crmn_viz.figures.renet import (
    SWEEP_GATE_LABELS,
    SWEEP_GATE_PATTERN,
    plot_context_reach,
    plot_patch_grid,
    plot_sweep_gates,
    plot_sweep_maps,
    sweep_gate_names,
)
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = [
    "renet_context_reach",
    "renet_gate_names",
    "renet_patch_grid",
    "renet_sweeps",
    "sweep_gates_view",
    "sweep_trace_names",
]


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


def renet_gate_names(model: TracedModel, layer: int = 0) -> tuple[str, ...]:
    """The gates the model records for every sweep of ``layer``, read from its trace names
    (GRU: ``update_gate``, ``reset_gate``; LSTM: ``input_gate``, ``forget_gate``,
    ``output_gate``, ``cell``); ``()`` for a model without sweep gates."""
    return sweep_gate_names(model.trace_names(), layer)


def sweep_gates_view(
    model: TracedModel, image: SelectedImage, layer: int, gate: str | None, compute: Compute
) -> Shown:
    """One gate of the four sweeps of ``layer``, averaged over the channels at every patch.

    Only the four maps of that gate are traced (``layers.{layer}.gates.<sweep>.<gate>``).

    Args:
        gate: one of :func:`renet_gate_names` (default: the first, the GRU's update gate).

    Raises:
        ValueError: ``layer`` is not a layer of the model, or ``gate`` is not recorded for it
            (the message lists those that are).
    """
    if not 0 <= layer < model.block_count:
        raise ValueError(f"layer must be in 0..{model.block_count - 1}, got {layer!r}")
    gates = renet_gate_names(model, layer)
    if not gates:
        raise ValueError(f"a {model.arch} model records no sweep gates")
    gate = gates[0] if gate is None else gate
    if gate not in gates:
        raise ValueError(f"layer {layer} records the gates {list(gates)}, not {gate!r}")
    names = [SWEEP_GATE_PATTERN.format(layer=layer, sweep=sweep, gate=gate) for sweep in model.sweep_names]
    trace = compute.trace(model, [image], names)
    label = SWEEP_GATE_LABELS.get(gate, gate)
    return shown(
        f"renet_gates_layer{layer}_{gate}_{image.stem}",
        plot_sweep_gates(trace, layer, gate),
        [image],
        f"The {label} of each sweep's RNN in ReNet layer {layer}, averaged over its channels at every "
        "patch; beneath, each channel's mean over the patches.",
        layer=layer,
        gate=gate,
    )
