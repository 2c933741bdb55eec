"""Views of the CRMN's LSTM memory: gates, cell state, two images compared, the animation and
class statistics (Moniz & Pal 2016, eqs. 2-7).

Each function takes the model, the chosen images and the display settings, asks a
:class:`~crmn_viz.views.compute.Compute` for the trace, and returns the :class:`Shown` figure.
"""

from __future__ import annotations

from collections.abc import Sequence

from crmn_viz.analysis.statistics import GateStatistics
from crmn_viz.figures import memory as memory_figures
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.class_statistics import per_class_arrays
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = [
    "memory_animation",
    "memory_cell_state",
    "memory_comparison",
    "memory_gate_heatmap",
    "memory_gate_statistics",
    "memory_gate_trajectories",
    "memory_trace_names",
]

Units = Sequence[int] | None


def memory_trace_names(model: TracedModel) -> tuple[str, ...]:
    """The trace names the memory views read (``lstm.<quantity>``)."""
    return tuple(f"lstm.{quantity}" for quantity in model.memory_quantities)


def _units(units: Units) -> dict[str, object]:
    return {"units": "all" if units is None else list(units)}


def memory_gate_heatmap(
    model: TracedModel,
    images: Sequence[SelectedImage],
    index: int,
    quantity: str,
    units: Units,
    compute: Compute,
) -> Shown:
    """One LSTM quantity of every memory unit after every block (units x steps) for image ``index``."""
    trace = compute.trace(model, images, memory_trace_names(model))
    figure = memory_figures.plot_gate_heatmap(trace, quantity, index, units, columns=2)
    image = images[index]
    return shown(f"gate_heatmap_{quantity}_{image.stem}", figure, [image], quantity=quantity, **_units(units))


def memory_gate_trajectories(
    model: TracedModel, images: Sequence[SelectedImage], index: int, units: Units, compute: Compute
) -> Shown:
    """Input, forget and output gates: mean over the units at every step, with their spread."""
    trace = compute.trace(model, images, memory_trace_names(model))
    figure = memory_figures.plot_gate_trajectories(trace, image_index=index, units=units, columns=2)
    image = images[index]
    return shown(f"gate_trajectories_{image.stem}", figure, [image], **_units(units))


def memory_cell_state(
    model: TracedModel, images: Sequence[SelectedImage], index: int, units: Units, compute: Compute
) -> Shown:
    """The cell state c (eq. 5) of the units after every block."""
    trace = compute.trace(model, images, memory_trace_names(model))
    image = images[index]
    figure = memory_figures.plot_cell_state(trace, index, units, columns=2)
    return shown(f"cell_state_{image.stem}", figure, [image], **_units(units))


def memory_comparison(
    model: TracedModel,
    images: Sequence[SelectedImage],
    first: int,
    second: int,
    quantity: str,
    units: Units,
    compute: Compute,
) -> Shown:
    """One quantity of two images side by side."""
    trace = compute.trace(model, images, memory_trace_names(model))
    pair = (images[first], images[second])
    figure = memory_figures.plot_gate_comparison(
        trace, trace, quantity, (pair[0].name, pair[1].name), image_indices=(first, second), units=units
    )
    return shown(
        f"gate_comparison_{quantity}_{first}_{second}", figure, pair, quantity=quantity, **_units(units)
    )


def memory_animation(
    model: TracedModel, images: Sequence[SelectedImage], index: int, units: Units, compute: Compute
) -> Shown:
    """Gates and cell state block by block, as an animation."""
    trace = compute.trace(model, images, memory_trace_names(model))
    image = images[index]
    figure = memory_figures.plot_memory_animation(trace, index, units)
    return shown(f"memory_animation_{image.stem}", figure, [image], **_units(units))


def memory_gate_statistics(
    stats: GateStatistics,
    quantity: str,
    images: Sequence[SelectedImage] = (),
    source: str = "gallery",
) -> Shown:
    """Per-class mean and spread of one quantity over many images (``stats``, computed elsewhere).

    ``quantity`` falls back to the forget gate when the statistics do not cover it (they hold
    the gates and the cell state).
    """
    summarised = quantity if quantity in stats.quantities else "forget_gate"
    means, stds, class_list = per_class_arrays(stats, summarised)
    figure = memory_figures.plot_gate_statistics(means, stds, class_list, summarised, columns=2)
    caption = (
        ""
        if summarised == quantity
        else f"Statistics cover the gates and the cell state: showing the forget gate, not {quantity}."
    )
    return shown(
        f"gate_statistics_{summarised}",
        figure,
        images,
        caption,
        quantity=summarised,
        count=stats.count,
        images_from=source,
    )
