"""Gradio front end: a light demo over the same core and figures as the Streamlit app.

Run with ``python -m crmn_viz.gradio_app`` or ``crmn-viz gradio``. Every handler is a
plain function calling the core (``crmn_viz.analysis``, ``crmn_viz.figures``); each
event has an ``api_name`` so ``gradio_client`` can call ``classify``, ``keypoints``
and ``attribute`` programmatically. Bad inputs raise ``gr.Error`` with the core's
readable message.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch

from crmn_viz.analysis import (
    ATTRIBUTION_METHODS,
    NoFaceFoundError,
    attribute,
    classify,
    predict_keypoints,
    prepare_batch,
    stepwise_readout,
)
from crmn_viz.checkpoints import CheckpointError, list_checkpoints, load
from crmn_viz.figures import (
    plot_attribution_overlay,
    plot_gate_heatmap,
    plot_keypoints,
    plot_stepwise_probabilities,
    plot_sweep_maps,
)
from crmn_viz.images import InvalidImageError, load_image
from crmn_viz.limits import LIMITS
from crmn_viz.models.base import TracedModel

__all__ = ["build_demo", "main"]

LSTM_QUANTITIES = ["input_gate", "forget_gate", "output_gate", "cell_candidate", "cell", "hidden"]


def zoo_names(arch: str | None = None, task: str | None = None) -> list[str]:
    """Checkpoint names of the zoo, optionally filtered by architecture and task."""
    return [
        entry["name"]
        for entry in list_checkpoints()
        if (arch is None or entry["arch"] == arch) and (task is None or entry["task"] == task)
    ]


@functools.lru_cache(maxsize=8)
def cached_model(name: str) -> TracedModel:
    """Load a zoo checkpoint once per process (CUDA when present)."""
    return load(name)


def _model(name: str | None) -> TracedModel:
    if not name:
        raise gr.Error("No checkpoint is available for this tab: add one to checkpoints/.")
    try:
        return cached_model(name)
    except CheckpointError as err:
        raise gr.Error(str(err)) from None


def _image(source: Any):  # type: ignore[no-untyped-def]
    if source is None:
        raise gr.Error("Please upload an image first.")
    try:
        return load_image(source)
    except InvalidImageError as err:
        raise gr.Error(str(err)) from None


def classify_handler(
    image: Any, checkpoint: str, top_k: int = 5
) -> tuple[dict[str, float], go.Figure | None]:
    """Top-k class probabilities and, for a CRMN, the probability after every block."""
    model = _model(checkpoint)
    picture = _image(image)
    ranked = classify(model, [picture], top_k=int(top_k))[0]
    figure = None
    if model.arch == "crmn":
        readout = stepwise_readout(model, [picture])
        figure = plot_stepwise_probabilities(
            readout.probabilities[0].numpy(), readout.class_names, top_k=int(top_k)
        )
    return {label: float(p) for label, p in ranked}, figure


def gate_handler(image: Any, checkpoint: str, quantity: str) -> go.Figure:
    """Heatmap of one LSTM quantity (units x blocks) for the uploaded image."""
    model = _model(checkpoint)
    if model.arch != "crmn":
        raise gr.Error("Gate heatmaps need a CRMN checkpoint (the only model with an LSTM memory).")
    batch = prepare_batch(model, [_image(image)])
    with torch.no_grad():
        _, trace = model.run_with_trace(batch, names=[f"lstm.{quantity}"])
    return plot_gate_heatmap(trace.cpu(), gate=quantity)


def sweeps_handler(image: Any, checkpoint: str, layer: int, mode: str) -> go.Figure:
    """The four sweep maps of one ReNet layer."""
    model = _model(checkpoint)
    if model.arch != "renet":
        raise gr.Error("Sweep maps need a ReNet checkpoint.")
    layer = int(layer)
    if not 0 <= layer < len(model.layers):
        raise gr.Error(f"This ReNet has layers 0..{len(model.layers) - 1}.")
    batch = prepare_batch(model, [_image(image)])
    with torch.no_grad():
        _, trace = model.run_with_trace(batch)
    return plot_sweep_maps(trace.cpu(), layer=layer, mode=mode)


def attribute_handler(
    image: Any, checkpoint: str, method: str, target_class: float | None = None, steps: float = 32
) -> tuple[go.Figure, dict[str, Any]]:
    """Attribution overlay for one method; the target defaults to the predicted class."""
    model = _model(checkpoint)
    picture = _image(image)
    options: dict[str, Any] = {}
    if method in ("integrated_gradients",):
        options["n_steps"] = int(steps)
    target = None if target_class is None or target_class < 0 else int(target_class)
    try:
        result = attribute(model, picture, method, target=target, **options)
    except ValueError as err:
        raise gr.Error(str(err)) from None
    shown = prepare_batch(model, [picture])[0]
    background = np.asarray(picture.resize((shown.shape[-1], shown.shape[-2])))
    summary = {
        "method": result.method,
        "target": result.target,
        "target_value": float(result.target_value) if result.target_value is not None else None,
        "convergence_delta": None if result.convergence_delta is None else float(result.convergence_delta),
    }
    return plot_attribution_overlay(background, result.map, title=None), summary


def keypoints_handler(image: Any, checkpoint: str) -> tuple[go.Figure, list[list[list[float]]]]:
    """68 facial keypoints for every detected face, drawn on the photo."""
    model = _model(checkpoint)
    if model.task != "keypoints":
        raise gr.Error("Face keypoints need a keypoint checkpoint (task = keypoints).")
    picture = _image(image)
    try:
        faces = predict_keypoints(model, picture)
    except NoFaceFoundError as err:
        raise gr.Error(str(err)) from None
    return plot_keypoints(np.asarray(picture), faces), [face.round(2).tolist() for face in faces]


def _gallery_examples(dataset: str, limit: int = 4) -> list[str]:
    try:
        from crmn_viz.app_support.gallery import list_gallery
    except ImportError:
        return []
    return [str(entry.path) for entry in list_gallery(dataset)][:limit]


def build_demo() -> gr.Blocks:
    """The Gradio app: tabs for classification, gates, sweeps, attributions and faces."""
    classifiers = zoo_names(task="classification")
    crmn_classifiers = zoo_names("crmn", "classification")
    renets = zoo_names("renet")
    keypoint_models = zoo_names(task="keypoints")
    with gr.Blocks(title="crmn-viz") as demo:
        gr.Markdown(
            "# crmn-viz\nLook inside recurrent-memory vision networks (CRMN, ReNet, ResNet in ResNet). "
            "Upload an image or pick an example."
        )
        with gr.Tab("Classify"):
            with gr.Row():
                image = gr.Image(type="filepath", label="Image", sources=["upload", "clipboard"])
                with gr.Column():
                    checkpoint = gr.Dropdown(
                        classifiers, value=(crmn_classifiers or classifiers or [None])[0], label="Checkpoint"
                    )
                    top_k = gr.Slider(1, 10, value=5, step=1, label="Top k")
                    button = gr.Button("Classify", variant="primary")
            label = gr.Label(label="Prediction")
            steps = gr.Plot(label="Prediction after every residual block (CRMN)")
            button.click(classify_handler, [image, checkpoint, top_k], [label, steps], api_name="classify")
            examples = _gallery_examples("cifar10")
            if examples:
                gr.Examples(examples, inputs=image)
        with gr.Tab("LSTM gates"):
            with gr.Row():
                gate_image = gr.Image(type="filepath", label="Image")
                with gr.Column():
                    gate_ckpt = gr.Dropdown(
                        crmn_classifiers + zoo_names("crmn", "keypoints"),
                        value=(crmn_classifiers or [None])[0],
                        label="CRMN checkpoint",
                    )
                    quantity = gr.Dropdown(LSTM_QUANTITIES, value="forget_gate", label="Quantity")
                    gate_button = gr.Button("Show memory", variant="primary")
            gate_plot = gr.Plot(label="Units x blocks")
            gate_button.click(gate_handler, [gate_image, gate_ckpt, quantity], gate_plot, api_name="gates")
        with gr.Tab("ReNet sweeps"):
            with gr.Row():
                sweep_image = gr.Image(type="filepath", label="Image")
                with gr.Column():
                    sweep_ckpt = gr.Dropdown(renets, value=(renets or [None])[0], label="ReNet checkpoint")
                    layer = gr.Number(0, precision=0, label="Layer")
                    mode = gr.Radio(["pca", "channels"], value="pca", label="Display")
                    sweep_button = gr.Button("Show sweeps", variant="primary")
            sweep_plot = gr.Plot(label="Four sweeps")
            sweep_button.click(
                sweeps_handler, [sweep_image, sweep_ckpt, layer, mode], sweep_plot, api_name="sweeps"
            )
        with gr.Tab("Attribution"):
            with gr.Row():
                attr_image = gr.Image(type="filepath", label="Image")
                with gr.Column():
                    attr_ckpt = gr.Dropdown(classifiers, value=(classifiers or [None])[0], label="Checkpoint")
                    method = gr.Dropdown(
                        list(ATTRIBUTION_METHODS), value="integrated_gradients", label="Method"
                    )
                    target = gr.Number(-1, precision=0, label="Target class (-1: predicted)")
                    most_steps = min(256, LIMITS.max_attribution_steps)
                    n_steps = gr.Slider(
                        min(8, most_steps),
                        most_steps,
                        value=min(32, most_steps),
                        step=8,
                        label="Integration steps (IG)",
                    )
                    attr_button = gr.Button("Attribute", variant="primary")
            attr_plot = gr.Plot(label="Attribution overlay")
            attr_info = gr.JSON(label="Details")
            attr_button.click(
                attribute_handler,
                [attr_image, attr_ckpt, method, target, n_steps],
                [attr_plot, attr_info],
                api_name="attribute",
            )
        with gr.Tab("Face keypoints"):
            with gr.Row():
                face_image = gr.Image(
                    type="filepath", label="Photo", sources=["upload", "webcam", "clipboard"]
                )
                with gr.Column():
                    face_ckpt = gr.Dropdown(
                        keypoint_models, value=(keypoint_models or [None])[0], label="Keypoint checkpoint"
                    )
                    face_button = gr.Button("Find keypoints", variant="primary")
            face_plot = gr.Plot(label="68 keypoints")
            face_points = gr.JSON(label="Keypoints per face (pixels)")
            face_button.click(
                keypoints_handler, [face_image, face_ckpt], [face_plot, face_points], api_name="keypoints"
            )
            face_examples = _gallery_examples("faces68")
            if face_examples:
                gr.Examples(face_examples, inputs=face_image)
    return demo


def main(argv: list[str] | None = None) -> None:
    """Launch the demo (``--port``, ``--host``; defaults 7860 on 127.0.0.1)."""
    import argparse

    parser = argparse.ArgumentParser(description="crmn-viz Gradio demo")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    args = parser.parse_args(argv)
    build_demo().queue(default_concurrency_limit=2).launch(
        server_name=args.host,
        server_port=args.port,
        show_error=True,
        max_file_size=LIMITS.max_image_bytes,  # refused before it is stored (CRMN_VIZ_MAX_IMAGE_BYTES)
    )


if __name__ == "__main__":
    main()
