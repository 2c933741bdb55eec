"""The "figures for a paper" workflow: every applicable figure and its numbers for a set of images.

:func:`figures_for_image` decides which figures apply to a model (CRMN gates and
per-block readouts, ReNet sweeps, RiR streams, attributions, face keypoints) and builds
them with the pure functions of :mod:`crmn_viz.figures`; :func:`write_report` exports
them all in one browser session, each with its data (``figure_data``) beside it.
``crmn-viz analyze CHECKPOINT IMAGES... --out DIR`` is a thin wrapper around it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from crmn_viz.analysis.attributions import attribute
from crmn_viz.analysis.face_steps import face_crop, face_steps
from crmn_viz.analysis.inputs import class_names_for, prepare_batch
from crmn_viz.analysis.keypoints import NoFaceFoundError, predict_faces
from crmn_viz.analysis.predictions import classify
from crmn_viz.analysis.readouts import stepwise_readout
from crmn_viz.figures import (
    FigureExport,
    export_figures,
    figure_data,
    plot_attribution_overlay,
    plot_gate_heatmap,
    plot_gate_trajectories,
    plot_keypoints,
    plot_memory_animation,
    plot_patch_grid,
    plot_prediction_bar,
    plot_stepwise_keypoints,
    plot_stepwise_probabilities,
    plot_stream_maps,
    plot_stream_norms,
    plot_sweep_maps,
)
from crmn_viz.images import encode_png
from crmn_viz.models.base import TracedModel
from crmn_viz.provenance import ImageRecord, Provenance, file_sha256

__all__ = ["ReportFigure", "figures_for_image", "report_figures", "write_report"]

GATE_FIGURES = ("input_gate", "forget_gate", "output_gate", "cell")


def safe_stem(text: str) -> str:
    """A file-name-safe stem (letters, digits, dash, underscore)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60] or "image"


@dataclass(frozen=True)
class ReportFigure:
    """One figure of a report: its ``name``, the ``figure`` and the ``settings`` that shaped it."""

    name: str
    figure: Any
    settings: dict[str, Any] = field(default_factory=dict)


ATTRIBUTION_METHODS_IN_REPORT = ("integrated_gradients", "saliency")


def _attribution_figures(model: TracedModel, image: Image.Image, steps: int) -> list[ReportFigure]:
    shown = prepare_batch(model, [image])[0]
    background = np.asarray(image.convert("RGB").resize((shown.shape[-1], shown.shape[-2])))
    figures = []
    for method in ATTRIBUTION_METHODS_IN_REPORT:
        options = {"n_steps": steps} if method == "integrated_gradients" else {}
        target = None
        if model.task == "keypoints":
            from crmn_viz.analysis.attributions import KeypointTarget

            target = KeypointTarget(30, 1)  # nose tip, y coordinate
        result = attribute(model, image, method, target=target, **options)
        settings = {"method": method, "method_options": options, "target": str(result.target)}
        figure = plot_attribution_overlay(
            background, result.map, target=str(result.target), target_value=result.target_value
        )
        figures.append(ReportFigure(f"attribution_{method}", figure, settings))
    return figures


def figures_for_image(model: TracedModel, image: Image.Image, ig_steps: int = 32) -> dict[str, Any]:
    """Every figure that applies to ``model`` for one image: name -> plotly figure."""
    return {item.name: item.figure for item in report_figures(model, image, ig_steps)}


def report_figures(model: TracedModel, image: Image.Image, ig_steps: int = 32) -> list[ReportFigure]:
    """Every figure that applies to ``model`` for one image, each with the settings that shaped it."""
    figures: list[ReportFigure] = []

    def add(name: str, figure: Any, **settings: Any) -> None:
        figures.append(ReportFigure(name, figure, settings))

    if model.task == "keypoints":
        box = "detected"
        try:
            faces = predict_faces(model, image)
        except NoFaceFoundError:
            width, height = image.size
            box = [0, 0, width, height]  # no face found: the whole photo is taken as the face
            faces = predict_faces(model, image, box=(0, 0, width, height))
        crop_boxes = [dict(face.crop_box._asdict()) for face in faces]
        add(
            "keypoints",
            plot_keypoints(
                np.asarray(image.convert("RGB")),
                [f.keypoints for f in faces],
                boxes=[face.crop_box.corners for face in faces],
            ),
            box=box,
            crop_boxes=crop_boxes,
        )
        steps = face_steps(model, image, faces[0])
        add(
            "stepwise_keypoints",
            plot_stepwise_keypoints(steps.crop, steps.keypoints_per_step),
            box=box,
            face=0,
            crop_box=crop_boxes[0],
        )
        _, height, width = model.input_shape
        image_for_model = face_crop(image, faces[0].crop_box, (height, width))
        network_input = {"network_input": "face crop", "crop_box": crop_boxes[0]}
    else:
        top_k = min(5, len(class_names_for(model)))
        ranked = classify(model, [image], top_k=top_k)[0]
        add("prediction", plot_prediction_bar([n for n, _ in ranked], [p for _, p in ranked]), top_k=top_k)
        image_for_model = image
        network_input = {"network_input": "whole image"}
    batch = prepare_batch(model, [image_for_model])
    with torch.no_grad():
        _, trace = model.run_with_trace(batch)
    trace = trace.cpu()
    if model.arch == "crmn":
        for gate in GATE_FIGURES:
            add(
                f"lstm_{gate}",
                plot_gate_heatmap(trace, gate=gate),
                quantity=gate,
                units="all",
                **network_input,
            )
        add("lstm_gate_trajectories", plot_gate_trajectories(trace), units="all", **network_input)
        add("lstm_memory_animation", plot_memory_animation(trace), units="all", **network_input)
        if model.task == "classification":
            readout = stepwise_readout(model, [image_for_model])
            add(
                "stepwise_probabilities",
                plot_stepwise_probabilities(readout.probabilities[0].numpy(), readout.class_names),
                **network_input,
            )
    if model.arch == "renet":
        patch_sizes = model.config.patch_sizes
        picture = np.asarray(image_for_model.convert("RGB").resize((batch.shape[-1], batch.shape[-2])))
        add("renet_patch_grid", plot_patch_grid(picture, patch_sizes), patch_sizes=list(patch_sizes))
        for layer in range(len(model.layers)):
            add(
                f"renet_layer{layer}_sweeps",
                plot_sweep_maps(trace, layer=layer, columns=2),
                layer=layer,
                mode="pca",
            )
    if model.arch == "rir":
        last = len(model.blocks) - 1
        add("rir_stream_norms", plot_stream_norms(trace, image_index=0))
        add("rir_stream_maps_last_block", plot_stream_maps(trace, block=last), block=last)
    for item in _attribution_figures(model, image_for_model, ig_steps):
        figures.append(ReportFigure(item.name, item.figure, {**item.settings, **network_input}))
    return figures


def write_report(
    model: TracedModel,
    images: Sequence[tuple[str, Image.Image]],
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "svg", "png"),
    dpi: int = 300,
    ig_steps: int = 32,
    image_records: Sequence[ImageRecord] | None = None,
) -> list[Path]:
    """Export every figure for every image (one browser session) with its data and provenance.

    Files are named ``<checkpoint>__<image>__<figure>.<ext>`` with ``.data.csv``/``.data.npz``
    and ``.meta.json`` sidecars; ``index.json`` lists them. Each figure's provenance (checkpoint,
    weights SHA-256, the image's name and file SHA-256, its settings, the time, the version)
    is written inside every file and into its ``.meta.json``.

    Args:
        image_records: the name and file SHA-256 of each image (as read from disk); without
            them an image is named by the SHA-256 of its canonical PNG encoding.

    Returns every path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = (
        list(image_records)
        if image_records is not None
        else [ImageRecord(name, file_sha256(encode_png(image.convert("RGB")))) for name, image in images]
    )
    if len(records) != len(images):
        raise ValueError(f"{len(images)} images but {len(records)} image records")
    checkpoint = Provenance.of(model)
    prefix = safe_stem(checkpoint.checkpoint)
    items = []
    for (name, image), record in zip(images, records):
        stem = safe_stem(name)
        for figure in report_figures(model, image, ig_steps):
            provenance = Provenance.of(
                model, [record], {"figure": figure.name, "ig_steps": ig_steps, **figure.settings}
            )
            is_animation = bool(getattr(figure.figure, "frames", None))
            items.append(
                FigureExport(
                    name=f"{prefix}__{stem}__{figure.name}",
                    figure=figure.figure,
                    data=figure_data(figure.figure),  # exported at the width each figure was laid out for
                    metadata={"image": name, "figure": figure.name, "animated": is_animation},
                    provenance=provenance,
                )
            )
    written = export_figures(items, out, formats=tuple(formats), dpi=dpi)
    animations = [item for item in items if item.metadata.get("animated")]
    if animations:  # an animation's static export shows frame 0; keep the playable HTML too
        written += export_figures(animations, out, formats=("html",), dpi=dpi)
    index = {
        "checkpoint": checkpoint.to_dict() | {"settings": {}},
        "figures": [str(p.name) for p in written],
        "images": [{"name": record.name, "sha256": record.sha256} for record in records],
    }
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return [*written, out / "index.json"]
