"""A figure as a view shows it: the figure, the images it shows and the settings that shaped it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go

from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.provenance import Provenance

__all__ = ["Shown"]


@dataclass(frozen=True)
class Shown:
    """One figure of a view, ready for any front end.

    Attributes:
        name: a file stem without the checkpoint (front ends put the checkpoint first), e.g.
            ``"gate_heatmap_forget_gate_cat"``.
        figure: the figure (a pure function of the results; print-sized).
        images: the images it shows, in order.
        settings: every option that shaped it (what its provenance records).
        caption: a sentence under it, or "".
    """

    name: str
    figure: go.Figure
    images: tuple[SelectedImage, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    caption: str = ""

    def provenance(self, model: TracedModel, checkpoint: str | None = None) -> Provenance:
        """What made the figure: ``model``'s checkpoint and digest, the images, the settings."""
        return Provenance.of(
            model, [image.record for image in self.images], self.settings, checkpoint=checkpoint
        )


def shown(
    name: str, figure: go.Figure, images: Sequence[SelectedImage], caption: str = "", **settings: Any
) -> Shown:
    """A :class:`Shown` with its settings as keyword arguments."""
    return Shown(name, figure, tuple(images), settings, caption)
