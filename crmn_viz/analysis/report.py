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
from crmn_viz.models.base import TracedModel

__all__ = ["figures_for_image", "write_report"]

GATE_FIGURES = ("input_gate", "forget_gate", "output_gate", "cell")


def safe_stem(text: str) -> str:
    """A file-name-safe stem (letters, digits, dash, underscore)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60] or "image"


def _attribution_figures(model: TracedModel, image: Image.Image, steps: int) -> dict[str, Any]:
    shown = prepare_batch(model, [image])[0]
    background = np.asarray(image.convert("RGB").resize((shown.shape[-1], shown.shape[-2])))
    figures = {}
    for method, options in (("integrated_gradients", {"n_steps": steps}), ("saliency", {})):
        target = None
        if model.task == "keypoints":
            from crmn_viz.analysis.attributions import KeypointTarget

            target = KeypointTarget(30, 1)  # nose tip, y coordinate
        result = attribute(model, image, method, target=target, **options)
        figures[f"attribution_{method}"] = plot_attribution_overlay(background, result.map)
    return figures


def figures_for_image(model: TracedModel, image: Image.Image, ig_steps: int = 32) -> dict[str, Any]:
    """Every figure that applies to ``model`` for one image: name -> plotly figure."""
    figures: dict[str, Any] = {}
    if model.task == "keypoints":
        try:
            faces = predict_faces(model, image)
        except NoFaceFoundError:
            width, height = image.size
            faces = predict_faces(model, image, box=(0, 0, width, height))
        figures["keypoints"] = plot_keypoints(np.asarray(image.convert("RGB")), [f.keypoints for f in faces])
        steps = face_steps(model, image, faces[0])
        figures["stepwise_keypoints"] = plot_stepwise_keypoints(steps.crop, steps.keypoints_per_step)
        _, height, width = model.input_shape
        image_for_model = face_crop(image, faces[0].crop_box, (height, width))
    else:
        ranked = classify(model, [image], top_k=min(5, len(class_names_for(model))))[0]
        figures["prediction"] = plot_prediction_bar([n for n, _ in ranked], [p for _, p in ranked])
        image_for_model = image
    batch = prepare_batch(model, [image_for_model])
    with torch.no_grad():
        _, trace = model.run_with_trace(batch)
    trace = trace.cpu()
    if model.arch == "crmn":
        for gate in GATE_FIGURES:
            figures[f"lstm_{gate}"] = plot_gate_heatmap(trace, gate=gate)
        figures["lstm_gate_trajectories"] = plot_gate_trajectories(trace)
        figures["lstm_memory_animation"] = plot_memory_animation(trace)
        if model.task == "classification":
            readout = stepwise_readout(model, [image_for_model])
            figures["stepwise_probabilities"] = plot_stepwise_probabilities(
                readout.probabilities[0].numpy(), readout.class_names
            )
    if model.arch == "renet":
        patch_sizes = model.config.patch_sizes
        figures["renet_patch_grid"] = plot_patch_grid(
            np.asarray(image_for_model.convert("RGB").resize((batch.shape[-1], batch.shape[-2]))), patch_sizes
        )
        for layer in range(len(model.layers)):
            figures[f"renet_layer{layer}_sweeps"] = plot_sweep_maps(trace, layer=layer, columns=2)
    if model.arch == "rir":
        figures["rir_stream_norms"] = plot_stream_norms(trace, image_index=0)
        figures["rir_stream_maps_last_block"] = plot_stream_maps(trace, block=len(model.blocks) - 1)
    figures.update(_attribution_figures(model, image_for_model, ig_steps))
    return figures


def write_report(
    model: TracedModel,
    images: Sequence[tuple[str, Image.Image]],
    out_dir: str | Path,
    formats: Sequence[str] = ("pdf", "svg", "png"),
    dpi: int = 300,
    ig_steps: int = 32,
) -> list[Path]:
    """Export every figure for every image (one browser session) with its data beside it.

    Files are named ``<image>__<figure>.<ext>`` with ``.data.csv``/``.data.npz`` and
    ``.meta.json`` sidecars; ``index.json`` lists them. Returns every path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for name, image in images:
        stem = safe_stem(name)
        for figure_name, figure in figures_for_image(model, image, ig_steps).items():
            is_animation = bool(getattr(figure, "frames", None))
            items.append(
                FigureExport(
                    name=f"{stem}__{figure_name}",
                    figure=figure,
                    data=figure_data(figure),  # exported at the width each figure was laid out for
                    metadata={
                        "image": name,
                        "figure": figure_name,
                        "checkpoint_arch": model.arch,
                        "animated": is_animation,
                    },
                )
            )
    written = export_figures(items, out, formats=tuple(formats), dpi=dpi)
    animations = [item for item in items if item.metadata.get("animated")]
    if animations:  # an animation's static export shows frame 0; keep the playable HTML too
        written += export_figures(animations, out, formats=("html",), dpi=dpi)
    index = {"figures": [str(p.name) for p in written], "images": [n for n, _ in images]}
    (out / "index.json").write_text(json.dumps(index, indent=2))
    return [*written, out / "index.json"]
