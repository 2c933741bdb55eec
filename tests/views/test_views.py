"""The views: one function per thing the app shows, the same for every front end."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

import crmn_viz
from crmn_viz.figures import figure_data
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.views import attribution, memory, prediction, streams, sweeps
from crmn_viz.views.compute import DirectCompute
from crmn_viz.views.report import report_figures
from tests.conftest import tiny_model

RUN = DirectCompute()


def picture(seed: int, size: tuple[int, int] = (32, 32)) -> SelectedImage:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return SelectedImage.from_bytes(f"image{seed}.png", buffer.getvalue())


@pytest.fixture(scope="module")
def images() -> list[SelectedImage]:
    return [picture(0), picture(1)]


@pytest.fixture(scope="module")
def crmn() -> crmn_viz.TracedModel:
    torch.manual_seed(0)
    return tiny_model("crmn", num_outputs=10, input_size=32).eval()


def test_a_memory_view_draws_the_recorded_gate_of_the_chosen_image(crmn, images) -> None:
    shown = memory.memory_gate_heatmap(crmn, images, 1, "input_gate", [0, 2], RUN)
    trace = RUN.trace(crmn, images)
    expected = trace["lstm.input_gate"][1][:, [0, 2]].numpy().T
    np.testing.assert_allclose(np.asarray(shown.figure.data[0].z), expected, rtol=1e-6)
    assert shown.images == (images[1],)
    assert dict(shown.settings) == {"quantity": "input_gate", "units": [0, 2]}
    record = shown.provenance(crmn).to_dict()
    assert record["images"] == [{"name": "image1.png", "sha256": images[1].record.sha256}]
    assert record["settings"] == {"quantity": "input_gate", "units": [0, 2]}


def test_the_prediction_views_rank_by_probability_and_read_the_memory_after_every_block(crmn, images) -> None:
    ranked, bar = prediction.class_prediction(crmn, images, 0, 3, RUN)
    assert list(bar.figure.data[0].y) == [name for name, _ in ranked]
    np.testing.assert_allclose(bar.figure.data[0].x, [p for _, p in ranked])
    probabilities = [p for _, p in ranked]
    assert len(ranked) == 3 and probabilities == sorted(probabilities, reverse=True)
    steps = prediction.stepwise_prediction(crmn, images, 0, 3, RUN)
    matrix = np.asarray(steps.figure.layout.meta["probabilities"])
    assert matrix.shape[0] == crmn.num_steps
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)
    # the last step is the model's own output
    top = max(zip(matrix[-1], steps.figure.layout.meta["class_names"]))[1]
    assert top == ranked[0][0]


def test_sweep_and_stream_views_follow_the_capabilities() -> None:
    renet = tiny_model("renet", num_outputs=10, input_size=32).eval()
    rir = tiny_model("rir", num_outputs=10, input_size=32).eval()
    chosen = [picture(3)]
    assert renet.sweep_names and not renet.has_memory and rir.stream_names and not rir.sweep_names
    shown = sweeps.renet_sweeps(renet, chosen, 0, 0, "pca", None, RUN)
    assert [trace.name for trace in shown.figure.data][:4] == list(renet.sweep_names)
    norms = streams.rir_stream_norms(rir, chosen, 0, RUN)
    assert [trace.name for trace in norms.figure.data] == ["residual r", "transient m"]
    assert dict(norms.settings) == {"average_over_images": False}


def test_an_attribution_view_explains_the_target_it_names(crmn, images) -> None:
    result, shown = attribution.attribution_view(crmn, images[0], "saliency", ("class", 4), (), RUN)
    assert "class 4" in str(result.target) and shown.settings["method"] == "saliency"
    np.testing.assert_allclose(np.asarray(shown.figure.data[1].z), np.abs(result.map).sum(axis=0), rtol=1e-5)


def test_the_report_asks_each_capability_for_its_figures(crmn) -> None:
    names = {item.name for item in report_figures(crmn, picture(5), ig_steps=4)}
    assert {"prediction", "stepwise_probabilities", "lstm_forget_gate", "attribution_saliency"} <= names
    resnet = tiny_model("resnet", num_outputs=10, input_size=32).eval()
    names = {item.name for item in report_figures(resnet, picture(5), ig_steps=4)}
    assert not any(name.startswith(("lstm_", "renet_", "rir_", "stepwise")) for name in names)


def test_gradio_and_the_views_draw_the_same_numbers(crmn, images, tmp_path, monkeypatch) -> None:
    from crmn_viz.frontends import gradio_app

    crmn_viz.save(crmn, tmp_path / "tiny-crmn", dataset="cifar10")
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(tmp_path))
    gradio_app.cached_model.cache_clear()
    path = tmp_path / "image0.png"
    path.write_bytes(images[0].png)
    try:
        from_gradio = gradio_app.gate_handler(str(path), "tiny-crmn", "forget_gate")
    finally:
        gradio_app.cached_model.cache_clear()
    loaded = crmn_viz.load(tmp_path / "tiny-crmn", device="cpu")
    from_view = memory.memory_gate_heatmap(loaded, [images[0]], 0, "forget_gate", None, RUN).figure
    ours, theirs = figure_data(from_view), figure_data(from_gradio)
    key = next(k for k in ours if k.endswith(".z"))
    np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-6)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == images[0].record.sha256
