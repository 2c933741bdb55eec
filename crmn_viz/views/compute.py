"""The network work a view asks for, behind one small interface a front end may cache.

A view never runs the network itself: it asks a :class:`Compute` for traces, predictions,
faces or attributions of :class:`~crmn_viz.inputs.selection.SelectedImage` objects.
:class:`DirectCompute` calls :mod:`crmn_viz.analysis` straight away (the CLI, Gradio, tests);
the Streamlit front end passes one whose methods are ``st.cache_data`` functions keyed on
the model's :func:`~crmn_viz.checkpoints.checkpoint_key` and the images' bytes, so a
display-only change reruns no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from crmn_viz.analysis.face_steps import FaceSteps, face_crop, face_steps
from crmn_viz.analysis.keypoints import FaceKeypoints, NoFaceFoundError, predict_faces
from crmn_viz.analysis.predictions import classify
from crmn_viz.analysis.readouts import StepwiseReadout, stepwise_readout
from crmn_viz.images import encode_png
from crmn_viz.inputs.selection import SelectedImage, decode_images
from crmn_viz.models.base import TracedModel
from crmn_viz.tracing import Trace
from crmn_viz.views.running import model_view, trace_images

__all__ = ["Box", "Compute", "DirectCompute", "TargetSpec", "attribution_target"]

Box = tuple[float, float, float, float]
"""A face box ``(x0, y0, x1, y1)`` in image pixels."""

TargetSpec = tuple[Any, ...]
"""A hashable attribution target: ``("predicted",)``, ``("class", k)``, ``("keypoint", k, "x")``
or ``("gate", quantity, unit, step)``."""


def attribution_target(spec: TargetSpec) -> Any:
    """The core's target object for a :data:`TargetSpec` (None: the predicted class)."""
    from crmn_viz.analysis.attributions import GateTarget, KeypointTarget

    kind = spec[0]
    if kind == "class":
        return int(spec[1])
    if kind == "keypoint":
        return KeypointTarget(int(spec[1]), spec[2])
    if kind == "gate":
        return GateTarget(str(spec[1]), int(spec[2]), int(spec[3]))
    return None


class Compute(Protocol):
    """What views ask the network for (every method may be cached by the front end)."""

    def trace(
        self, model: TracedModel, images: Sequence[SelectedImage], names: Sequence[str] | None = None
    ) -> Trace:
        """Recorded internals of the images (batch in image order), on the CPU."""
        ...

    def classify(
        self, model: TracedModel, images: Sequence[SelectedImage], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """Top-k labelled class probabilities per image."""
        ...

    def stepwise(self, model: TracedModel, images: Sequence[SelectedImage]) -> StepwiseReadout:
        """The CRMN's prediction after every block."""
        ...

    def faces(self, model: TracedModel, image: SelectedImage, box: Box | None) -> list[FaceKeypoints] | str:
        """Keypoints of every face found (or in ``box``), or the message when none is found."""
        ...

    def face_steps(
        self, model: TracedModel, image: SelectedImage, face_index: int, box: Box | None
    ) -> FaceSteps | None:
        """The keypoints of one face after every block (None when no face is found)."""
        ...

    def face_crop(self, model: TracedModel, image: SelectedImage, box: Box | None) -> bytes | None:
        """The first face's crop at the model's input size, as PNG bytes (None: no face)."""
        ...

    def model_view(self, model: TracedModel, png: bytes) -> np.ndarray:
        """The picture at the network's input size and colour mode, RGB uint8 [H, W, 3]."""
        ...

    def attribution(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
    ) -> Any:
        """:func:`crmn_viz.analysis.attribute` for one picture (PNG bytes)."""
        ...


class DirectCompute:
    """:class:`Compute` that runs :mod:`crmn_viz.analysis` at once, caching nothing."""

    def trace(
        self, model: TracedModel, images: Sequence[SelectedImage], names: Sequence[str] | None = None
    ) -> Trace:
        """See :meth:`Compute.trace`."""
        return trace_images(model, [image.image() for image in images], names)

    def classify(
        self, model: TracedModel, images: Sequence[SelectedImage], top_k: int
    ) -> list[list[tuple[str, float]]]:
        """See :meth:`Compute.classify`."""
        return classify(model, [image.image() for image in images], top_k=top_k)

    def stepwise(self, model: TracedModel, images: Sequence[SelectedImage]) -> StepwiseReadout:
        """See :meth:`Compute.stepwise`."""
        return stepwise_readout(model, [image.image() for image in images])

    def faces(self, model: TracedModel, image: SelectedImage, box: Box | None) -> list[FaceKeypoints] | str:
        """See :meth:`Compute.faces`."""
        try:
            return predict_faces(model, image.image(), box=box)
        except NoFaceFoundError as err:
            return str(err)

    def face_steps(
        self, model: TracedModel, image: SelectedImage, face_index: int, box: Box | None
    ) -> FaceSteps | None:
        """See :meth:`Compute.face_steps`."""
        found = self.faces(model, image, box)
        if isinstance(found, str) or face_index >= len(found):
            return None
        return face_steps(model, image.image(), found[face_index], image.keypoints)

    def face_crop(self, model: TracedModel, image: SelectedImage, box: Box | None) -> bytes | None:
        """See :meth:`Compute.face_crop`."""
        found = self.faces(model, image, box)
        if isinstance(found, str):
            return None
        _, height, width = model.input_shape
        return encode_png(face_crop(image.image(), found[0].crop_box, (height, width)))

    def model_view(self, model: TracedModel, png: bytes) -> np.ndarray:
        """See :meth:`Compute.model_view`."""
        return model_view(model, decode_images([png])[0])

    def attribution(
        self,
        model: TracedModel,
        png: bytes,
        method: str,
        target: TargetSpec,
        options: tuple[tuple[str, Any], ...],
    ) -> Any:
        """See :meth:`Compute.attribution`."""
        from crmn_viz.analysis.attributions import attribute

        return attribute(model, decode_images([png])[0], method, attribution_target(target), **dict(options))
