"""Views of a network's blocks: per block, the channel means and norms of its output for one image.

For the ResNet (He et al. 2015) and the CRMN's backbone these are the residual block outputs
``blocks.{k}.out`` (the CRMN paper's eq. 1); for RiR both streams of every generalized block.
The view asks a :class:`~crmn_viz.views.compute.Compute` for the trace of those names only.
"""

from __future__ import annotations

from crmn_viz.analysis.block_channels import block_channel_summary, block_output_names
from crmn_viz.figures.blocks import plot_block_channels
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Compute
from crmn_viz.views.shown import Shown, shown

__all__ = ["block_channels_view"]


def block_channels_view(model: TracedModel, image: SelectedImage, compute: Compute) -> Shown:
    """Channel means, channel L2 norms and the overall norm of every block output for ``image``.

    Returns:
        The :class:`Shown` figure (its numbers: ``figure.layout.meta`` and the heatmaps' ``z``).

    Raises:
        ValueError: the model has no blocks (ask ``bool(model.gradcam_layers)`` first).
    """
    names = block_output_names(model)
    if not names:
        raise ValueError(f"a {model.arch} model has no blocks whose outputs could be summarised")
    trace = compute.trace(model, [image], names)
    summary = block_channel_summary(trace, model)
    streams = [stream for stream in summary.stream_names if stream is not None]
    caption = (
        f"Every block output of {image.name}: the mean (top) and the L2 norm (middle) of each channel "
        "over the map's positions, and the output's overall L2 norm (bottom). Dotted lines: stages."
    )
    return shown(
        f"block_channels_{image.stem}",
        plot_block_channels(summary),
        [image],
        caption,
        block_outputs=list(names),
        **({"streams": streams} if streams else {}),
    )
