"""Views of a ResNet in ResNet (Targ et al. 2016): the residual and transient streams."""

from __future__ import annotations

from collections.abc import Sequence

from crmn_viz.figures.rir import plot_stream_maps, plot_stream_norms
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = ["rir_stream_maps", "rir_stream_norms", "stream_trace_names"]


def stream_trace_names(model: TracedModel) -> tuple[str, ...]:
    """The trace names these views draw (both streams of every block), so only they come back
    from the model's device."""
    return tuple(
        f"blocks.{block}.{stream}" for block in range(model.block_count) for stream in model.stream_names
    )


def rir_stream_norms(
    model: TracedModel, images: Sequence[SelectedImage], index: int | None, compute: Compute
) -> Shown:
    """Root-mean-square activity of each stream after every block (``index`` None: all images' mean)."""
    trace = compute.trace(model, images, stream_trace_names(model))
    figure = plot_stream_norms(trace, index, columns=2)
    if index is None:
        return shown("rir_stream_norms", figure, images, average_over_images=True)
    image = images[index]
    return shown(f"rir_stream_norms_{image.stem}", figure, [image], average_over_images=False)


def rir_stream_maps(
    model: TracedModel, images: Sequence[SelectedImage], index: int, block: int, compute: Compute
) -> Shown:
    """Channel-mean maps of both streams at one generalized block."""
    trace = compute.trace(model, images, stream_trace_names(model))
    image = images[index]
    figure = plot_stream_maps(trace, block, index, columns=2)
    return shown(f"rir_stream_maps_block{block}_{image.stem}", figure, [image], block=block)
