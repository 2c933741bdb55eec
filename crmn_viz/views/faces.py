"""Views of a keypoint network: the 68 points on the photo, and a CRMN's points after every block."""

from __future__ import annotations

from typing import Literal

from crmn_viz.analysis.keypoints import FaceKeypoints
from crmn_viz.figures.overlays import plot_keypoints
from crmn_viz.figures.readouts import plot_stepwise_keypoints
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.models.base import TracedModel
from crmn_viz.views.compute import Box, Compute
from crmn_viz.views.shown import Shown, shown

__all__ = ["face_keypoints", "face_steps_view"]


def _box_settings(box: Box | None, how: str) -> dict[str, object]:
    return {"box_mode": how, "box": list(box) if box is not None else "detected"}


def face_keypoints(
    model: TracedModel, image: SelectedImage, box: Box | None, compute: Compute, how: str = "Detect"
) -> tuple[list[FaceKeypoints], Shown] | str:
    """Every face's predicted keypoints (and the ground truth when known) on the photo.

    Args:
        box: the face box to use, or None to find faces with the detector.
        how: how the box was chosen (recorded in the provenance).

    Returns:
        The faces and their figure, or the message when no face was found.
    """
    found = compute.faces(model, image, box)
    if isinstance(found, str):
        return found
    crop_boxes = [face.crop_box.corners for face in found]
    figure = plot_keypoints(
        image.image(), [f.keypoints for f in found], ground_truth=image.keypoints, boxes=crop_boxes
    )
    settings = {**_box_settings(box, how), "crop_boxes": [dict(f.crop_box._asdict()) for f in found]}
    return found, Shown(f"face_keypoints_{image.stem}", figure, (image,), settings)


def face_steps_view(
    model: TracedModel,
    image: SelectedImage,
    face_index: int,
    box: Box | None,
    layout: Literal["grid", "slider"],
    compute: Compute,
    how: str = "Detect",
) -> Shown | None:
    """One face's keypoints after every block (a CRMN reads out its memory at each step)."""
    steps = compute.face_steps(model, image, face_index, box)
    if steps is None:
        return None
    figure = plot_stepwise_keypoints(
        steps.crop, steps.keypoints_per_step, ground_truth=steps.ground_truth, layout=layout
    )
    return shown(
        f"face_steps_{layout}_{image.stem}",
        figure,
        [image],
        face=face_index,
        layout=layout,
        crop_box=dict(steps.crop_box._asdict()),
        **_box_settings(box, how),
    )
