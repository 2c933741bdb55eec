"""RiR stream figures from a real trace of a tiny ResNet in ResNet."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from crmn_viz.figures import plot_stream_maps, plot_stream_norms
from crmn_viz.figures.rir import rir_block_count, stream_rms
from tests.conftest import random_input, tiny_model

BLOCKS = 4  # two stages of one RiR block of two generalized blocks


@pytest.fixture(scope="module")
def rir_trace():
    torch.manual_seed(0)
    model = tiny_model("rir")
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, batch=3))
    return trace


def rms(trace, block: int, stream: str) -> np.ndarray:
    values = trace[f"blocks.{block}.{stream}"].double().numpy()
    return np.sqrt((values**2).mean(axis=(1, 2, 3)))


def test_stream_rms_is_the_normalised_l2_norm() -> None:
    x = torch.randn(2, 4, 3, 5)
    expected = x.flatten(1).norm(dim=1) / np.sqrt(4 * 3 * 5)
    np.testing.assert_allclose(stream_rms(x), expected.numpy(), rtol=1e-6)


def test_stream_norms_batch_mean_with_error_bars(rir_trace) -> None:
    assert rir_block_count(rir_trace) == BLOCKS
    fig = plot_stream_norms(rir_trace)
    assert [t.name for t in fig.data] == ["residual r", "transient m"]
    for trace, stream in zip(fig.data, ("residual", "transient")):
        per_image = np.stack([rms(rir_trace, k, stream) for k in range(BLOCKS)], axis=1)
        assert trace.mode == "lines+markers"
        np.testing.assert_allclose(trace.x, np.arange(BLOCKS))
        np.testing.assert_allclose(trace.y, per_image.mean(axis=0), rtol=1e-5)
        np.testing.assert_allclose(trace.error_y.array, per_image.std(axis=0), rtol=1e-4, atol=1e-7)
    assert [s.x0 for s in fig.layout.shapes] == [1.5]  # the resolution halves after block 1
    assert "RMS" in fig.layout.yaxis.title.text and not fig.layout.title.text


def test_stream_norms_of_one_image(rir_trace) -> None:
    fig = plot_stream_norms(rir_trace, image_index=2)
    expected = [rms(rir_trace, k, "transient")[2] for k in range(BLOCKS)]
    np.testing.assert_allclose(fig.data[1].y, expected, rtol=1e-5)
    assert fig.data[1].error_y.array is None


def test_stream_maps_are_channel_means_on_one_scale(rir_trace) -> None:
    fig = plot_stream_maps(rir_trace, block=-1, image_index=1)
    residual, transient = fig.data
    assert isinstance(residual, go.Heatmap) and residual.coloraxis == transient.coloraxis
    np.testing.assert_allclose(
        np.asarray(transient.z), rir_trace["blocks.3.transient"][1].mean(dim=0).numpy(), rtol=1e-6
    )
    assert np.asarray(residual.z).shape == (8, 8)
    top = max(np.asarray(residual.z).max(), np.asarray(transient.z).max())
    assert fig.layout.coloraxis.cmin == 0 and fig.layout.coloraxis.cmax == pytest.approx(top)
    assert fig.layout.yaxis.autorange == "reversed"
    with pytest.raises(ValueError, match="block"):
        plot_stream_maps(rir_trace, block=BLOCKS)
    with pytest.raises(KeyError):
        plot_stream_norms({"lstm.cell": torch.zeros(1, 3, 2)})
