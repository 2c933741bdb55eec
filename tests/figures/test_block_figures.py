"""Block figures: channel means and norms of every block output, re-derived from the traces by hand."""

from __future__ import annotations

import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from crmn_viz.analysis.block_channels import block_channel_summary, block_output_names
from crmn_viz.figures.blocks import plot_block_channels
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.views.blocks import block_channels_view
from crmn_viz.views.compute import DirectCompute
from tests.conftest import random_input, tiny_model


def traced(arch: str, **overrides: object):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = tiny_model(arch, **overrides)
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, batch=2))
    return model, trace


def by_hand(values: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
    """Channel means, channel L2 norms and the Frobenius norm of one output [C, H, W]."""
    array = values.double().numpy()
    means = np.array([array[c].mean() for c in range(array.shape[0])])
    norms = np.array([np.sqrt((array[c] ** 2).sum()) for c in range(array.shape[0])])
    return means, norms, float(np.linalg.norm(array.ravel()))


@pytest.mark.parametrize(("arch", "overrides"), [("resnet", {}), ("crmn", {}), ("resnet", {"preact": True})])
def test_means_and_norms_are_those_of_every_residual_block_output(arch: str, overrides: dict) -> None:
    model, trace = traced(arch, **overrides)
    summary = block_channel_summary(trace, model, image_index=1)
    names = [f"blocks.{k}.out" for k in range(len(model.blocks))]
    assert list(summary.names) == names == list(block_output_names(model))
    assert summary.stages == tuple(model.stage_of_block)
    for row, name in enumerate(names):
        means, norms, total = by_hand(trace[name][1])
        np.testing.assert_allclose(summary.channel_means[row], means, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(summary.channel_norms[row], norms, rtol=1e-6)
        assert summary.total_norms[row] == pytest.approx(total, rel=1e-6)
        assert summary.shapes[row] == tuple(trace[name].shape[1:])
    # a channel is counted once per position: the squared channel norms add up to the total
    np.testing.assert_allclose(
        [np.sqrt((n**2).sum()) for n in summary.channel_norms], summary.total_norms, rtol=1e-9
    )


def test_the_figure_draws_the_summary(tmp_path) -> None:
    model, trace = traced("crmn")
    summary = block_channel_summary(trace, model)
    fig = plot_block_channels(summary)
    means = next(t for t in fig.data if t.name == "channel means")
    norms = next(t for t in fig.data if t.name == "channel norms")
    line = next(t for t in fig.data if isinstance(t, go.Scatter) and t.name == "norm")
    z_means, z_norms = np.asarray(means.z, dtype=float), np.asarray(norms.z, dtype=float)
    widths = [trace[f"blocks.{k}.out"].shape[1] for k in range(len(model.blocks))]
    assert z_means.shape == (max(widths), len(model.blocks))
    for block, width in enumerate(widths):
        hand_means, hand_norms, _ = by_hand(trace[f"blocks.{block}.out"][0])
        np.testing.assert_allclose(z_means[:width, block], hand_means, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(z_norms[:width, block], hand_norms, rtol=1e-6)
        assert np.isnan(z_means[width:, block]).all()  # a narrower block leaves its upper rows empty
    np.testing.assert_allclose(line.y, [by_hand(trace[f"blocks.{k}.out"][0])[2] for k in range(len(widths))])
    # a dotted stage boundary half way between the stages, in every row
    boundaries = [
        k - 0.5 for k in range(1, len(widths)) if model.stage_of_block[k] != model.stage_of_block[k - 1]
    ]
    drawn = sorted({shape.x0 for shape in fig.layout.shapes if shape.line.dash == "dot"})
    assert drawn == boundaries
    assert fig.layout.meta["stages"] == list(model.stage_of_block)


def test_rir_streams_are_rows_of_their_own_and_stages_follow_the_map_size() -> None:
    model, trace = traced("rir")
    summary = block_channel_summary(trace, model)
    streams = model.stream_names
    assert list(summary.names) == [f"blocks.{k}.{s}" for k in range(len(model.blocks)) for s in streams]
    # tiny RiR: two stages of one RiR block of two generalized blocks each
    per_stage = model.config.layers_per_block
    assert list(summary.stages) == [k // per_stage for k in range(len(model.blocks)) for _ in streams]
    fig = plot_block_channels(summary)
    for stream in streams:
        heatmap = next(t for t in fig.data if t.name == f"{stream} channel means")
        z = np.asarray(heatmap.z, dtype=float)
        for block in range(len(model.blocks)):
            means, _, _ = by_hand(trace[f"blocks.{block}.{stream}"][0])
            np.testing.assert_allclose(z[: means.size, block], means, rtol=1e-6, atol=1e-9)


def test_renet_layers_are_its_blocks() -> None:
    model, trace = traced("renet")
    summary = block_channel_summary(trace, model)
    assert list(summary.names) == [f"layers.{k}.out" for k in range(len(model.layers))]
    assert summary.stages == (0, 1)  # each ReNet layer has its own grid
    np.testing.assert_allclose(summary.channel_means[1], by_hand(trace["layers.1.out"][0])[0], rtol=1e-6)


def test_missing_block_outputs_and_bad_indices_are_refused() -> None:
    model, trace = traced("resnet")
    with pytest.raises(KeyError, match="blocks.0.out"):
        block_channel_summary({"logits": trace["logits"]}, model)
    with pytest.raises(ValueError, match="out of range"):
        block_channel_summary(trace, model, image_index=2)


def test_the_view_traces_only_the_block_outputs_of_the_image() -> None:
    torch.manual_seed(0)
    model = tiny_model("resnet", num_outputs=10, input_size=32)
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = SelectedImage.from_bytes("noise.png", buffer.getvalue())
    run = DirectCompute()
    shown = block_channels_view(model, image, run)
    trace = run.trace(model, [image])
    heatmap = next(t for t in shown.figure.data if t.name == "channel norms")
    z = np.asarray(heatmap.z, dtype=float)
    for block in range(len(model.blocks)):
        _, norms, _ = by_hand(trace[f"blocks.{block}.out"][0])
        np.testing.assert_allclose(z[: norms.size, block], norms, rtol=1e-5)
    assert shown.images == (image,)
    assert dict(shown.settings) == {"block_outputs": [f"blocks.{k}.out" for k in range(len(model.blocks))]}


def test_signed_means_get_a_scale_symmetric_about_zero_and_non_negative_ones_start_at_zero() -> None:
    model, trace = traced("resnet", preact=True)  # pre-activation blocks end in an addition: signed
    signed = plot_block_channels(block_channel_summary(trace, model))
    assert signed.layout.coloraxis.cmin == -signed.layout.coloraxis.cmax < 0
    model, trace = traced("resnet")  # post-activation blocks end in a ReLU
    assert min(float(trace[f"blocks.{k}.out"].min()) for k in range(len(model.blocks))) >= 0
    positive = plot_block_channels(block_channel_summary(trace, model))
    assert positive.layout.coloraxis.cmin == 0 and positive.layout.coloraxis2.cmin == 0
