"""Per block, what each channel of a block's output carries for one image: its mean and norm.

A residual block ``l`` outputs ``x_l = F(x_{l-1}) + x_{l-1}`` [C_l, H_l, W_l] (He et al. 2015;
Moniz & Pal 2016, eq. 1: the maps the CRMN's LSTM reads after mean pooling). For one image and
every block output recorded in a trace, :func:`block_channel_summary` gives

* the channel means ``m_c = (1 / (H W)) sum_{h,w} x[c, h, w]`` [C_l] (what global average
  pooling would pass on),
* the channel L2 norms ``n_c = sqrt(sum_{h,w} x[c, h, w]^2)`` [C_l] (how much the channel holds
  over all positions, whatever its sign), and
* the block output's overall (Frobenius) norm ``||x_l|| = sqrt(sum_c n_c^2)``.

Which trace names are block outputs is the model's answer
(:meth:`~crmn_viz.models.base.TracedModel.gradcam_layer`, for every block and every stream in
:attr:`~crmn_viz.models.base.TracedModel.stream_names`): ``blocks.{k}.out`` for the ResNet and
the CRMN, ``blocks.{k}.residual`` and ``blocks.{k}.transient`` for RiR, ``layers.{k}.out`` for
ReNet. Nothing here runs a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from crmn_viz.models.base import TracedModel

__all__ = ["BlockChannelSummary", "block_channel_summary", "block_output_names"]


def _block_outputs(model: TracedModel) -> list[tuple[str, int, str | None]]:
    """``(trace name, block, stream)`` of every block output, block by block, streams in order."""
    if not model.gradcam_layers:
        return []
    streams = model.stream_names or (None,)
    return [
        (model.gradcam_layer(block, stream), block, stream)
        for block in range(model.block_count)
        for stream in streams
    ]


def block_output_names(model: TracedModel) -> tuple[str, ...]:
    """The trace name of every block output of ``model``, block by block, streams in order.

    Returns:
        e.g. ``("blocks.0.out", ..., "blocks.8.out")`` (ResNet, CRMN) or ``("blocks.0.residual",
        "blocks.0.transient", ...)`` (RiR); ``()`` for a model without blocks.
    """
    return tuple(name for name, _, _ in _block_outputs(model))


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class BlockChannelSummary:
    """Channel means and norms of every block output for one image (R rows: blocks x streams).

    Attributes:
        names: the trace name of each row, e.g. ``"blocks.3.out"`` [R].
        blocks: the block index of each row [R].
        streams: each row's stream (``"residual"``, ``"transient"``), or None for one-stream
            models [R].
        stages: the stage of each row's block (0-based) [R]: ``model.stage_of_block`` where the
            model has it (ResNet, CRMN), else a new stage wherever the output's shape changes.
        shapes: ``(C, H, W)`` of each row's output [R].
        channel_means: per row, the mean of each channel over the H x W positions, [C_row].
        channel_norms: per row, the L2 norm of each channel over the positions, [C_row].
        total_norms: the Frobenius norm of each row's whole output [R].
        image_index: which image of the trace's batch.
    """

    names: tuple[str, ...]
    blocks: tuple[int, ...]
    streams: tuple[str | None, ...]
    stages: tuple[int, ...]
    shapes: tuple[tuple[int, int, int], ...]
    channel_means: tuple[np.ndarray, ...]
    channel_norms: tuple[np.ndarray, ...]
    total_norms: np.ndarray
    image_index: int = 0

    @property
    def rms(self) -> np.ndarray:
        """Root-mean-square activation of each row, ``||x|| / sqrt(C H W)`` [R]: comparable across
        stages of different widths and map sizes."""
        sizes = np.array([c * h * w for c, h, w in self.shapes], dtype=np.float64)
        return self.total_norms / np.sqrt(sizes)

    @property
    def stream_names(self) -> tuple[str | None, ...]:
        """The streams, in first-seen order (``(None,)`` for one-stream models)."""
        return tuple(dict.fromkeys(self.streams))

    @property
    def block_count(self) -> int:
        """How many blocks the summary covers."""
        return len(dict.fromkeys(self.blocks))

    def rows_of(self, stream: str | None) -> list[int]:
        """Row indices of one stream, in block order."""
        return [row for row, name in enumerate(self.streams) if name == stream]

    def matrix(self, kind: str, stream: str | None = None) -> np.ndarray:
        """``"means"`` or ``"norms"`` of one stream as [blocks, max C] (NaN beyond a block's C)."""
        values = {"means": self.channel_means, "norms": self.channel_norms}[kind]
        rows = self.rows_of(stream)
        width = max((values[row].shape[0] for row in rows), default=0)
        matrix = np.full((len(rows), width), np.nan)
        for position, row in enumerate(rows):
            matrix[position, : values[row].shape[0]] = values[row]
        return matrix


def _as_array(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch.Tensor
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _stages(model: TracedModel, blocks: list[int], shapes: list[tuple[int, int, int]]) -> list[int]:
    """Stage of each row: the model's ``stage_of_block`` when it has one, else a new stage
    wherever a block's output shape (channels or map size) differs from the previous block's."""
    known = getattr(model, "stage_of_block", None)
    if known is not None and len(known) == model.block_count:
        return [int(known[block]) for block in blocks]
    stage_of_block: dict[int, int] = {}
    stage, previous = 0, None
    for block, shape in zip(blocks, shapes):
        if block in stage_of_block:
            continue  # another stream of the same block
        if previous is not None and shape != previous:
            stage += 1
        stage_of_block[block], previous = stage, shape
    return [stage_of_block[block] for block in blocks]


def block_channel_summary(
    trace: Mapping[str, Any], model: TracedModel, image_index: int = 0
) -> BlockChannelSummary:
    """Channel means, channel L2 norms and the overall norm of every block output for one image.

    Args:
        trace: a trace of ``model`` holding :func:`block_output_names` (e.g. from
            ``compute.trace(model, [image], names=block_output_names(model))``), each
            [B, C, H, W].
        model: the model traced (it names the block outputs and their stages).
        image_index: which image of the batch.

    Returns:
        The :class:`BlockChannelSummary` (float64).

    Raises:
        ValueError: the model has no blocks, or ``image_index`` is out of range.
        KeyError: a block output is missing from the trace.
    """
    outputs = _block_outputs(model)
    if not outputs:
        raise ValueError(f"a {model.arch} model has no blocks whose outputs could be summarised")
    means, norms, totals, shapes, blocks, streams = [], [], [], [], [], []
    for name, block, stream in outputs:
        if name not in trace:
            raise KeyError(
                f"the trace holds no {name!r}: trace the model with names=block_output_names(model)"
            )
        recorded = trace[name]
        if len(recorded.shape) != 4:
            raise ValueError(f"{name} should be [B, C, H, W], got shape {tuple(recorded.shape)}")
        batch = int(recorded.shape[0])
        if not -batch <= image_index < batch:
            raise ValueError(f"image_index {image_index} is out of range for a batch of {batch}")
        output = _as_array(recorded[image_index])
        channels = output.reshape(output.shape[0], -1)
        means.append(channels.mean(axis=1))
        norms.append(np.sqrt((channels**2).sum(axis=1)))
        totals.append(float(np.sqrt((channels**2).sum())))
        shapes.append(tuple(int(size) for size in output.shape))
        blocks.append(block)
        streams.append(stream)
    return BlockChannelSummary(
        names=tuple(name for name, _, _ in outputs),
        blocks=tuple(blocks),
        streams=tuple(streams),
        stages=tuple(_stages(model, blocks, shapes)),
        shapes=tuple(shapes),  # type: ignore[arg-type]
        channel_means=tuple(means),
        channel_norms=tuple(norms),
        total_norms=np.array(totals),
        image_index=int(image_index) % batch,
    )
