"""Figures drawn over the input image: attribution heatmaps and facial keypoints.

* :func:`plot_attribution_overlay`: an attribution map (saliency, integrated gradients,
  Grad-CAM, occlusion ...) over the image it explains.
* :func:`draw_keypoints`: draw 68-point (iBUG / 300-W) faces with OpenCV, predictions
  and ground truth in two colour-blind-safe colours, anti-aliased, at sub-pixel
  precision; returns a new RGB array.
* :func:`plot_keypoints`: that drawing as a Plotly figure, axes in image pixels.

The drawings are pixels, so each figure also keeps the numbers it shows in
``fig.layout.meta`` (see :func:`keypoint_summary`): the coordinates, the face boxes and the
NME for keypoints, the target for attributions. :func:`crmn_viz.figures.figure_data`
writes them to the figure's data file as ``"layout.meta.<name>"``.

Keypoints are ``(x, y)`` in image pixels, with integer values on pixel centres (the
NumPy/OpenCV convention used by :mod:`crmn_viz.data.face_geometry`). None of these runs
a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import cv2
import numpy as np
import plotly.graph_objects as go

from crmn_viz.figures.arrays import as_rgb_uint8, rgba, to_numpy
from crmn_viz.figures.layout import add_meta, image_figure_height_in, image_pixel_axes
from crmn_viz.figures.theme import (
    DIVERGING_COLORSCALE,
    OKABE_ITO,
    SEQUENTIAL_COLORSCALE,
    apply_paper_style,
    inches_to_px,
    symmetric_range,
)

__all__ = [
    "CROP_BOX_COLOUR",
    "FACE68_CLOSED_GROUPS",
    "FACE68_GROUPS",
    "FACE_BOX_COLOUR",
    "GIVEN_BOX_COLOUR",
    "GROUND_TRUTH_COLOUR",
    "OUTER_EYE_CORNERS",
    "PREDICTION_COLOUR",
    "attribution_map",
    "draw_keypoints",
    "keypoint_axes",
    "keypoint_boxes",
    "keypoint_image",
    "keypoint_nme",
    "keypoint_summary",
    "legend_entry",
    "plot_attribution_overlay",
    "plot_keypoints",
]

FACE68_GROUPS: tuple[tuple[int, ...], ...] = (
    tuple(range(0, 17)),  # jaw
    tuple(range(17, 22)),  # right brow (subject's)
    tuple(range(22, 27)),  # left brow
    tuple(range(27, 31)),  # nose bridge
    tuple(range(31, 36)),  # lower nose
    tuple(range(36, 42)),  # right eye
    tuple(range(42, 48)),  # left eye
    tuple(range(48, 60)),  # outer lips
    tuple(range(60, 68)),  # inner lips
)
"""The iBUG 68-point outline groups, each drawn as one polyline."""

FACE68_CLOSED_GROUPS: frozenset[int] = frozenset({5, 6, 7, 8})
"""Indices into :data:`FACE68_GROUPS` of the closed outlines: both eyes and both lips."""

PREDICTION_COLOUR = OKABE_ITO["orange"]
"""Predicted keypoints (Okabe-Ito orange)."""
GROUND_TRUTH_COLOUR = OKABE_ITO["sky_blue"]
"""Ground-truth keypoints (Okabe-Ito sky blue): tells apart from orange with any colour vision."""

FACE_BOX_COLOUR = "#000000"
"""Outline of the face boxes given to :func:`plot_keypoints` (dashed, thin)."""
CROP_BOX_COLOUR = OKABE_ITO["bluish_green"]
"""Outline of the crop the keypoint model saw (:func:`plot_keypoints`' ``crop_box``; its earlier
rounds dotted and faint)."""
GIVEN_BOX_COLOUR = OKABE_ITO["vermillion"]
"""Outline of a face box the user gives or is drawing (:func:`plot_keypoints`' ``given_box``)."""

OUTER_EYE_CORNERS: tuple[int, int] = (36, 45)
"""The 68-point indices whose distance normalises the 300-W NME (the outer eye corners)."""

_SHIFT = 4  # OpenCV fixed-point bits: coordinates in 1/16 pixel
_SUBPIXEL = 1 << _SHIFT


# --------------------------------------------------------------------------- attributions


def attribution_map(attribution: Any, signed: bool = True) -> np.ndarray:
    """Reduce an attribution to one value per pixel, [H, W].

    Args:
        attribution: [H, W], [1, H, W] or [C, H, W] (a batch of one, [1, C, H, W], is
            accepted too).
        signed: Keep the sign: channels are summed. Otherwise the absolute values are
            summed over the channels (the usual "magnitude" view).

    Returns:
        A float array [H, W].
    """
    values = to_numpy(attribution)
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim == 2:
        return np.abs(values) if not signed else values
    if values.ndim != 3:
        raise ValueError(f"an attribution must be [H, W] or [C, H, W], got shape {values.shape}")
    return values.sum(axis=0) if signed else np.abs(values).sum(axis=0)


def _fading_scale(colorscale: list, opacity: float, signed: bool) -> list[list[Any]]:
    """The colour scale with an alpha ramp: transparent at 0, ``opacity`` at the extremes.

    Alpha grows with the square root of the distance from 0, so moderate values are
    already visible; the colour itself still encodes the value linearly.
    """
    faded = []
    for position, colour in colorscale:
        weight = (abs(2 * position - 1) if signed else position) ** 0.5  # visible well before the extremes
        if colour.startswith("rgb("):
            red, green, blue = (int(float(v)) for v in colour[4:-1].split(","))
            colour = f"#{red:02X}{green:02X}{blue:02X}"
        faded.append([position, rgba(colour, round(opacity * weight, 4))])
    return faded


def plot_attribution_overlay(
    image: Any,
    attribution: Any,
    opacity: float = 0.5,
    signed: bool = True,
    title: str | None = None,
    *,
    grey_background: bool = True,
    target: str | int | None = None,
    target_value: float | None = None,
    columns: Literal[1, 2] = 1,
    height_in: float | None = None,
) -> go.Figure:
    """An attribution heatmap over the image it explains.

    The image is the background (``go.Image``); on top, a heatmap of the attribution
    whose colour fades to transparent where the attribution is 0 and reaches
    ``opacity`` at the largest magnitude, so the image shows through where nothing is
    attributed (alpha grows with the square root of the magnitude). Signed attributions
    use the diverging scale symmetric about 0 (blue negative, red positive); unsigned
    ones viridis from 0. By default the image is shown in grey, so its own colours are
    not mistaken for attribution colours.

    Args:
        image: The input image (see :func:`crmn_viz.figures.arrays.as_rgb_uint8`).
        attribution: [H, W] or [C, H, W] (reduced with :func:`attribution_map`); a
            different size than the image is resized bilinearly to it.
        opacity: Opacity of the strongest attribution (0..1).
        signed: Show the sign (channel sum, diverging scale) or the magnitude
            (absolute values summed over channels, sequential scale).
        title: Optional figure title (kept when given).
        grey_background: Show the image as grey levels (luminance); ``False`` keeps colour.
        target: What the attribution explains (a class name or index, a keypoint
            coordinate, a gate unit ...); shown on hover and kept in the meta.
        target_value: The model's output for that target on this image.
        columns: Printed width: 1 or 2 columns.
        height_in: Printed height in inches (default: fitted to the image's aspect).

    Returns:
        A figure with a ``go.Image`` and a ``go.Heatmap`` named ``"attribution"`` whose
        ``z`` is the per-pixel attribution [H, W]. ``fig.layout.meta`` holds ``signed``,
        ``opacity``, ``target`` (as text) and ``target_value`` when given, and
        ``attribution_shape`` ([h, w] of the map before it was resized to the image).
    """
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be in [0, 1], got {opacity}")
    rgb = as_rgb_uint8(image)
    if grey_background:
        grey = np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
        rgb = np.repeat(grey[..., None], 3, axis=-1)
    height, width = rgb.shape[:2]
    values = attribution_map(attribution, signed=signed)
    original_shape = [int(size) for size in values.shape]
    if values.shape != (height, width):
        values = cv2.resize(values.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
        values = values.astype(np.float64)
    if signed:
        low, high = symmetric_range(values)
        scale = _fading_scale(DIVERGING_COLORSCALE, opacity, signed=True)
    else:
        finite = values[np.isfinite(values)]
        low, high = 0.0, float(finite.max()) if finite.size and finite.max() > 0 else 1.0
        scale = _fading_scale(SEQUENTIAL_COLORSCALE, opacity, signed=False)
    fig = go.Figure(go.Image(z=rgb, name="image", hoverinfo="skip"))
    fig.add_trace(
        go.Heatmap(
            z=values,
            name="attribution",
            zmin=low,
            zmax=high,
            colorscale=scale,
            colorbar={"title": {"text": "attribution" if signed else "|attribution|", "side": "right"}},
            hovertemplate=("" if target is None else f"target {target}<br>")
            + "x %{x}, y %{y}: %{z:.3g}<extra></extra>",
        )
    )
    image_pixel_axes(fig, height, width)
    if title:
        fig.update_layout(title_text=title)
    add_meta(
        fig,
        signed=bool(signed),
        opacity=float(opacity),
        target=None if target is None else str(target),
        target_value=None if target_value is None else float(target_value),
        attribution_shape=original_shape,
    )
    default = image_figure_height_in(
        columns, height, width, reserved_width_px=95, reserved_height_px=50 + (25 if title else 0)
    )
    return apply_paper_style(fig, columns=columns, height_in=height_in or default, keep_title=bool(title))


# --------------------------------------------------------------------------- keypoints


def _faces(keypoints: Any) -> list[np.ndarray]:
    """A list of [K, 2] arrays from one [K, 2] array, an [N, K, 2] array or a list."""
    if keypoints is None:
        return []
    if isinstance(keypoints, (list, tuple)) and keypoints and np.ndim(to_numpy(keypoints[0])) == 2:
        faces = [to_numpy(face) for face in keypoints]
    else:
        array = to_numpy(keypoints)
        if array.size == 0:
            return []
        faces = [array] if array.ndim == 2 else list(array) if array.ndim == 3 else []
        if not faces:
            raise ValueError(f"keypoints must be [K, 2], [N, K, 2] or a list of [K, 2]; got {array.shape}")
    for face in faces:
        if face.ndim != 2 or face.shape[1] != 2:
            raise ValueError(f"each face's keypoints must be [K, 2] (x, y), got {face.shape}")
    return faces


def _cv_colour(colour: str) -> tuple[int, int, int]:
    """OpenCV colour tuple for an RGB array (the array is RGB, so no BGR swap)."""
    text = colour.lstrip("#")
    return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.rint(points * _SUBPIXEL).astype(np.int32)


def _draw_face(canvas: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], radius: float) -> None:
    thickness = max(1, int(np.rint(radius / 2)))
    if points.shape[0] == 68:
        for index, group in enumerate(FACE68_GROUPS):
            line = points[list(group)]
            if not np.isfinite(line).all():
                continue
            cv2.polylines(
                canvas,
                [_fixed(line).reshape(-1, 1, 2)],
                isClosed=index in FACE68_CLOSED_GROUPS,
                color=colour,
                thickness=thickness,
                lineType=cv2.LINE_AA,
                shift=_SHIFT,
            )
    for x, y in points:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(
                canvas,
                (int(np.rint(x * _SUBPIXEL)), int(np.rint(y * _SUBPIXEL))),
                int(np.rint(radius * _SUBPIXEL)),
                colour,
                thickness=-1,
                lineType=cv2.LINE_AA,
                shift=_SHIFT,
            )


def draw_keypoints(
    image_rgb_uint8: Any,
    keypoints_list: Any,
    ground_truth: Any = None,
    radius: float | None = None,
    *,
    prediction_colour: str = PREDICTION_COLOUR,
    ground_truth_colour: str = GROUND_TRUTH_COLOUR,
) -> np.ndarray:
    """Draw predicted (and ground-truth) facial keypoints on a copy of an RGB image.

    Every point is a filled, anti-aliased disc; a face of 68 points is also joined
    along the iBUG outlines (jaw 0-16, brows 17-21 and 22-26, nose 27-30 and 31-35,
    closed eyes 36-41 and 42-47, closed lips 48-59 and 60-67). Ground truth is drawn
    first, the predictions on top. Non-finite points are skipped.

    Args:
        image_rgb_uint8: The image (an RGB uint8 array [H, W, 3]; anything
            :func:`crmn_viz.figures.arrays.as_rgb_uint8` accepts is converted).
        keypoints_list: Predicted points: one face [K, 2], several [N, K, 2], or a list
            of [K, 2] arrays, (x, y) in image pixels.
        ground_truth: The true points, same forms, or ``None``.
        radius: Disc radius in pixels (default: 1% of the shorter side, at least 1).
        prediction_colour: ``#RRGGBB`` of the predictions.
        ground_truth_colour: ``#RRGGBB`` of the ground truth.

    Returns:
        A new uint8 array [H, W, 3]; the input is not changed.
    """
    canvas = np.ascontiguousarray(as_rgb_uint8(image_rgb_uint8))
    if radius is None:
        radius = max(1.0, min(canvas.shape[:2]) / 100)
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    for face in _faces(ground_truth):
        _draw_face(canvas, face.astype(np.float64), _cv_colour(ground_truth_colour), radius)
    for face in _faces(keypoints_list):
        _draw_face(canvas, face.astype(np.float64), _cv_colour(prediction_colour), radius)
    return canvas


def keypoint_image(
    image: Any,
    keypoints_list: Any,
    ground_truth: Any = None,
    *,
    upscale: int | None = None,
    radius: float | None = None,
) -> tuple[np.ndarray, int]:
    """Enlarge an image and draw keypoints on it (the drawing behind :func:`plot_keypoints`).

    Args:
        image: The image.
        keypoints_list: Predicted points ([K, 2], [N, K, 2] or a list), original pixels.
        ground_truth: True points in the same forms, or ``None``.
        upscale: Enlargement factor (default: enough for about 400 pixels across, at
            most 8); nearest-neighbour, so every model pixel stays a visible square.
        radius: Disc radius in *original* pixels (default: 1% of the shorter side, but
            at least 1.5 enlarged pixels).

    Returns:
        ``(drawn, factor)``: the RGB uint8 drawing [H * factor, W * factor, 3] and the
        factor. Original pixel ``(x, y)`` maps to ``((x + 0.5) * factor - 0.5, ...)``.
    """
    rgb = as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    factor = upscale if upscale is not None else int(min(8, max(1, np.ceil(400 / max(height, width)))))
    if factor < 1:
        raise ValueError(f"upscale must be at least 1, got {upscale}")
    enlarged = cv2.resize(rgb, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)

    def scaled(points: Any) -> list[np.ndarray]:  # pixel centres: x' = (x + 0.5) * s - 0.5
        return [(face + 0.5) * factor - 0.5 for face in _faces(points)]

    disc = max(1.5, (radius if radius is not None else min(height, width) / 100) * factor)
    return draw_keypoints(enlarged, scaled(keypoints_list), scaled(ground_truth), radius=disc), factor


def keypoint_axes(fig: go.Figure, height: int, width: int, **where: Any) -> None:
    """Image-pixel axes for a keypoint drawing: row 0 at the top, square pixels."""
    fig.update_xaxes(range=[-0.5, width - 0.5], constrain="domain", showgrid=False, **where)
    fig.update_yaxes(range=[height - 0.5, -0.5], constrain="domain", showgrid=False, **where)


def legend_entry(name: str, colour: str) -> go.Scatter:
    """A legend-only line-and-marker entry (no data) naming a drawing colour."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="lines+markers",
        name=name,
        line={"color": colour, "width": 1.5},
        marker={"color": colour, "size": 6},
        hoverinfo="skip",
    )


def keypoint_nme(predicted: Any, truth: Any) -> float:
    """300-W normalised mean error of one face: mean_i ||p_i - t_i|| / ||t_36 - t_45||.

    The same definition as :func:`crmn_viz.analysis.keypoint_evaluation.normalised_mean_error`
    (computed here in numpy, float64). Non-finite points make the result NaN.

    Args:
        predicted: [68, 2] predicted points (x, y).
        truth: [68, 2] true points, in the same pixels.

    Returns:
        The NME as a fraction (0.05 = 5%), or NaN when either face is not 68 points.
    """
    p, t = to_numpy(predicted), to_numpy(truth)
    if p.shape != (68, 2) or t.shape != (68, 2):
        return float("nan")
    interocular = float(np.linalg.norm(t[OUTER_EYE_CORNERS[0]] - t[OUTER_EYE_CORNERS[1]]))
    return float(np.linalg.norm(p - t, axis=-1).mean() / max(interocular, 1e-9))


def keypoint_boxes(keypoints: Any) -> np.ndarray:
    """Bounding box ``(x0, y0, x1, y1)`` of each face's finite points (the keypoints' box).

    Args:
        keypoints: One face [K, 2], several [N, K, 2] or a list of [K, 2] arrays.

    Returns:
        [N, 4] floats; NaN for a face without a finite point.
    """
    boxes = []
    for face in _faces(keypoints):
        finite = face[np.isfinite(face).all(axis=1)]
        if finite.size:
            boxes.append([*finite.min(axis=0).tolist(), *finite.max(axis=0).tolist()])
        else:
            boxes.append([float("nan")] * 4)
    return np.array(boxes, dtype=float).reshape(-1, 4)


def _face_lists(keypoints: Any) -> list[list[list[float]]] | None:
    faces = _faces(keypoints)
    return [face.astype(float).tolist() for face in faces] if faces else None


def _given_boxes(boxes: Any) -> np.ndarray | None:
    if boxes is None:
        return None
    array = to_numpy(boxes)
    if array.size == 0:
        return np.zeros((0, 4))
    if array.shape == (4,):
        array = array[None]
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be (x0, y0, x1, y1) or [N, 4], got shape {array.shape}")
    return array


def keypoint_summary(keypoints: Any, ground_truth: Any = None, boxes: Any = None) -> dict[str, Any]:
    """The numbers a keypoint figure shows, as the JSON-friendly dict kept in ``layout.meta``.

    Args:
        keypoints: Predicted points: [K, 2], [N, K, 2] or a list of [K, 2] (image pixels).
        ground_truth: True points in the same forms, or ``None``.
        boxes: Face boxes ``(x0, y0, x1, y1)`` in image pixels, one per predicted face
            (e.g. the detector's boxes), or ``None``.

    Returns:
        ``prediction`` ([N][K][2] x, y per point), ``prediction_boxes`` ([N][4], each
        face's keypoint bounding box x0, y0, x1, y1); with ground truth also
        ``ground_truth`` ([M][K][2]), ``ground_truth_boxes`` ([M][4]) and, for 68-point
        faces, ``nme`` ([N]: each prediction's 300-W NME against the ground-truth face it
        matches best, see :func:`keypoint_nme`) and ``nme_ground_truth_face`` ([N], which
        one); with ``boxes`` also ``face_boxes`` ([N][4]). Absent parts are left out.
    """
    predicted = _faces(keypoints)
    truth = _faces(ground_truth)
    summary: dict[str, Any] = {
        "prediction": _face_lists(predicted),
        "prediction_boxes": keypoint_boxes(predicted).tolist() if predicted else None,
    }
    if truth:
        summary["ground_truth"] = _face_lists(truth)
        summary["ground_truth_boxes"] = keypoint_boxes(truth).tolist()
        errors = np.array([[keypoint_nme(p, t) for t in truth] for p in predicted], dtype=float)
        if predicted and np.isfinite(errors).any():
            best = [int(np.nanargmin(row)) if np.isfinite(row).any() else -1 for row in errors]
            summary["nme"] = [float(row[k]) if k >= 0 else float("nan") for row, k in zip(errors, best)]
            summary["nme_ground_truth_face"] = best
    given = _given_boxes(boxes)
    if given is not None:
        summary["face_boxes"] = given.tolist()
    return {name: value for name, value in summary.items() if value is not None}


def _box_corners(box: Any, what: str) -> list[float] | None:
    """One box ``(x0, y0, x1, y1)`` as four floats, or None."""
    if box is None:
        return None
    corners = to_numpy(box).astype(float).reshape(-1)
    if corners.shape != (4,):
        raise ValueError(f"{what} must be (x0, y0, x1, y1), got shape {to_numpy(box).shape}")
    return corners.tolist()


def _add_box(
    fig: go.Figure, corners: list[float], name: str, line: dict[str, Any], opacity: float = 1.0
) -> None:
    x0, y0, x1, y1 = corners
    fig.add_shape(
        type="rect",
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        name=name,
        line=line,
        fillcolor="rgba(0,0,0,0)",  # the template fills shapes
        layer="above",
        opacity=opacity,
    )


def _box_legend(name: str, line: dict[str, Any]) -> go.Scatter:
    """A legend-only line entry (no data) naming a kind of box."""
    return go.Scatter(x=[None], y=[None], mode="lines", name=name, line=line, hoverinfo="skip")


def plot_keypoints(
    image: Any,
    keypoints_list: Any,
    ground_truth: Any = None,
    *,
    upscale: int | None = None,
    radius: float | None = None,
    boxes: Any = None,
    box_labels: Sequence[str] | None = None,
    crop_box: Any = None,
    round_boxes: Any = None,
    given_box: Any = None,
    columns: Literal[1, 2] = 1,
    width_in: float | None = None,
    height_in: float | None = None,
) -> go.Figure:
    """Facial keypoints drawn on the image (see :func:`draw_keypoints`), as a figure.

    Small crops (the CRMN keypoint model sees 80 x 80 pixels) are enlarged with
    nearest-neighbour sampling before drawing, so the outlines are smooth; the axes
    stay in the original image pixels. A legend names the colours.

    Args:
        image: The image.
        keypoints_list: Predicted points ([K, 2], [N, K, 2] or a list), image pixels.
        ground_truth: True points in the same forms, or ``None``.
        upscale: Enlargement factor (default: enough for about 400 pixels across, at
            most 8).
        radius: Disc radius in *original* image pixels (default: 1% of the shorter
            side, but at least 1.5 enlarged pixels).
        boxes: Face boxes ``(x0, y0, x1, y1)`` in image pixels (one per face, e.g. the
            detector's), drawn as thin dashed black rectangles named ``"face box"``; default none.
        box_labels: One text per box (e.g. ``"1  0.99"``: its number and detector score),
            written inside the box's top-left corner (kept on the photo) on a light background.
        crop_box: The square crop ``(x0, y0, x1, y1)`` the model finally saw, drawn as a solid
            green rectangle named ``"crop box"``.
        round_boxes: Earlier crops ``[R, 4]`` (e.g. the refinement rounds before the last),
            drawn faint and dotted in the crop box's colour, named ``"round k crop"``.
        given_box: A face box the user gives or is drawing ``(x0, y0, x1, y1)``, a solid
            vermillion rectangle named ``"given box"``.
        columns: Printed width: 1 or 2 columns.
        width_in: Printed width in inches instead of the columns' (e.g. a larger figure for
            a screen page).
        height_in: Printed height in inches (default: fitted to the image's aspect).

    Returns:
        A figure with one ``go.Image`` (the drawing, named ``"keypoints"``) and legend
        entries ``"prediction"`` (and ``"ground truth"``, and one per kind of box drawn).
        The numbers drawn are in ``fig.layout.meta`` (:func:`keypoint_summary`:
        ``prediction``, ``ground_truth``, their boxes, ``nme``, ``face_boxes``) together with
        ``upscale`` and, when given, ``face_box_labels``, ``crop_box``, ``round_boxes``
        ([R][4]) and ``given_box``.
    """
    summary = keypoint_summary(keypoints_list, ground_truth, boxes)
    face_boxes = summary.get("face_boxes", [])
    if box_labels is not None and len(box_labels) != len(face_boxes):
        raise ValueError(f"need one label per box, got {len(box_labels)} labels and {len(face_boxes)} boxes")
    crop = _box_corners(crop_box, "crop_box")
    given = _box_corners(given_box, "given_box")
    earlier = _given_boxes(round_boxes)
    drawing, factor = keypoint_image(image, keypoints_list, ground_truth, upscale=upscale, radius=radius)
    height, width = drawing.shape[0] // factor, drawing.shape[1] // factor
    fig = go.Figure(
        go.Image(
            z=drawing,
            x0=-0.5 + 0.5 / factor,
            dx=1 / factor,
            y0=-0.5 + 0.5 / factor,
            dy=1 / factor,
            name="keypoints",
            hovertemplate="x %{x:.1f}, y %{y:.1f}<extra></extra>",
        )
    )
    fig.add_trace(legend_entry("prediction", PREDICTION_COLOUR))
    if ground_truth is not None:
        fig.add_trace(legend_entry("ground truth", GROUND_TRUTH_COLOUR))
    face_line = {"color": FACE_BOX_COLOUR, "width": 1, "dash": "dash"}
    crop_line = {"color": CROP_BOX_COLOUR, "width": 1.5}
    given_line = {"color": GIVEN_BOX_COLOUR, "width": 1.5}
    if earlier is not None:
        for number, corners in enumerate(earlier.tolist()):
            _add_box(fig, corners, f"round {number} crop", {**crop_line, "width": 1, "dash": "dot"}, 0.55)
    for number, corners in enumerate(face_boxes):
        _add_box(fig, corners, "face box", face_line)
        if box_labels is not None:
            fig.add_annotation(  # inside the top-left corner, kept on the photo
                x=min(max(corners[0], -0.5), width - 0.5),
                y=min(max(corners[1], -0.5), height - 0.5),
                text=str(box_labels[number]),
                showarrow=False,
                xanchor="left",
                yanchor="top",
                font={"size": 8, "color": FACE_BOX_COLOUR},
                bgcolor="rgba(255,255,255,0.8)",
                borderpad=1,
            )
    if crop is not None:
        _add_box(fig, crop, "crop box", crop_line)
    if given is not None:
        _add_box(fig, given, "given box", given_line)
    if face_boxes:
        fig.add_trace(_box_legend("face box", face_line))
    if crop is not None:
        fig.add_trace(_box_legend("crop box", crop_line))
    if given is not None:
        fig.add_trace(_box_legend("given box", given_line))
    extra = {
        "face_box_labels": None if box_labels is None else [str(label) for label in box_labels],
        "crop_box": crop,
        "round_boxes": None if earlier is None else earlier.tolist(),
        "given_box": given,
    }
    add_meta(fig, **summary, upscale=int(factor), **{k: v for k, v in extra.items() if v is not None})
    image_pixel_axes(fig, height, width)
    fig.update_layout(legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"}, showlegend=True)
    if width_in is None:
        default = image_figure_height_in(columns, height, width, reserved_width_px=55, reserved_height_px=75)
    else:  # the same fit for a width of its own: the photo fills the width, at most 8 in tall
        fitted = (inches_to_px(width_in) - 55) * height / width + 75
        default = round(min(max(fitted / 96.0, 1.6), 8.0), 3)
    return apply_paper_style(fig, columns=columns, width_in=width_in, height_in=height_in or default)
