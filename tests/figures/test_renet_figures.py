"""ReNet figures: sweep maps (PCA and channels), patch grids, and context reach checked against autograd."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from crmn_viz.figures import context_reach_masks, plot_context_reach, plot_patch_grid, plot_sweep_maps
from crmn_viz.figures.renet import (
    BOUNDED_GATES,
    SWEEP_DIRECTIONS,
    SWEEP_LABELS,
    plot_sweep_gates,
    renet_grid_sizes,
    sweep_gate_names,
    sweep_pca_rgb,
)
from tests.conftest import random_input, tiny_model

# tiny ReNet: 9 x 9 RGB input, 2 x 2 patches (zero padding to 10 x 10) -> 5 x 5 grid, then 3 x 3


@pytest.fixture(scope="module")
def renet():
    torch.manual_seed(0)
    model = tiny_model("renet")
    images = random_input(model, batch=2)
    with torch.no_grad():
        _, trace = model.run_with_trace(images)
    return model, images, trace


def test_grid_sizes_from_the_trace(renet) -> None:
    model, _, trace = renet
    assert renet_grid_sizes(trace) == [tuple(s) for s in model.grid_sizes] == [(5, 5), (3, 3)]


def test_pca_mode_shows_four_rgb_images_in_unit_range(renet) -> None:
    _, _, trace = renet
    fig = plot_sweep_maps(trace, layer=0, image_index=1)
    assert [t.name for t in fig.data] == list(SWEEP_DIRECTIONS)
    assert all(isinstance(t, go.Image) for t in fig.data)
    stacked = np.stack([np.asarray(t.z) for t in fig.data])
    assert stacked.shape == (4, 5, 5, 3)
    assert stacked.min() >= 0.0 and stacked.max() <= 1.0
    assert tuple(fig.data[0].zmax)[:3] == (1, 1, 1)
    # one scaling over the four maps: every component spans exactly [0, 1] jointly
    np.testing.assert_allclose(stacked.reshape(-1, 3).min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(stacked.reshape(-1, 3).max(axis=0), 1.0, atol=1e-12)
    ratios = fig.layout.meta["explained_variance_ratio"]
    assert len(ratios) == 3 and 0 < sum(ratios) <= 1 + 1e-9 and ratios == sorted(ratios, reverse=True)
    assert [a.text for a in fig.layout.annotations] == [
        "↓ top to bottom",
        "↑ bottom to top",
        "→ left to right",
        "← right to left",
    ]


def test_pca_is_fitted_jointly_over_the_maps() -> None:
    rng = np.random.default_rng(0)
    maps = {name: rng.normal(size=(6, 4, 3)) for name in "abcd"}
    maps["d"] = maps["d"] + 5.0  # one map far from the others along all channels
    rgb, explained = sweep_pca_rgb(maps)
    samples = np.concatenate([m.reshape(6, -1).T for m in maps.values()])
    centred = samples - samples.mean(axis=0)
    first = np.linalg.svd(centred, full_matrices=False)[2][0]
    projection = centred @ first
    red = np.concatenate([rgb[name][..., 0].reshape(-1) for name in "abcd"])
    assert abs(np.corrcoef(projection, red)[0, 1]) == pytest.approx(1.0)
    assert explained[0] > 0.5  # the shift dominates the variance
    assert rgb["d"][..., 0].mean() > 0.8 or rgb["d"][..., 0].mean() < 0.2  # distinct colour, jointly scaled
    grey, _ = sweep_pca_rgb({"a": np.ones((2, 3, 3))})
    np.testing.assert_allclose(grey["a"], 0.5)  # constant states: mid grey, no division by zero


def test_channels_mode_grid(renet) -> None:
    _, _, trace = renet
    fig = plot_sweep_maps(trace, layer=1, mode="channels", channels=[0, 2])
    assert len(fig.data) == 4 * 2
    heatmap = next(t for t in fig.data if t.name == "horizontal_bwd ch 2")
    np.testing.assert_allclose(
        np.asarray(heatmap.z), trace["layers.1.horizontal_bwd"][0, 2].numpy(), rtol=1e-6
    )
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax
    assert len(plot_sweep_maps(trace, mode="channels").data) == 4 * 4  # all 4 channels of layer 0
    with pytest.raises(ValueError, match="mode"):
        plot_sweep_maps(trace, mode="rgb")  # type: ignore[arg-type]


def test_patch_grid_compounds_patch_sizes_and_marks_padding() -> None:
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    fig = plot_patch_grid(image, [[3, 3], 2], layer=1)
    assert isinstance(fig.data[0], go.Image)
    assert fig.layout.meta["patch_pixels"] == [6, 6]
    assert fig.layout.meta["grid"] == [3, 3]  # ceil(ceil(16 / 3) / 2)
    assert tuple(fig.layout.xaxis.range) == (-0.5, 17.5)  # 3 patches of 6 pixels
    assert tuple(fig.layout.yaxis.range) == (17.5, -0.5)  # row 0 at the top
    grid_paths = [s.path for s in fig.layout.shapes if s.type == "path" and s.name != "zero padding"]
    assert len(grid_paths) == 2  # dark outline + light line
    assert grid_paths[0].count("M") == 4 + 4  # 4 vertical and 4 horizontal lines
    assert any(s.name == "zero padding" for s in fig.layout.shapes)
    exact = plot_patch_grid(np.zeros((8, 8)), [2], layer=0)
    assert not any(s.name == "zero padding" for s in exact.layout.shapes)


def test_context_reach_follows_the_sweep_definitions() -> None:
    masks = context_reach_masks([(5, 4)], layer=0, row=2, col=1)
    rows, cols = np.indices((5, 4))
    np.testing.assert_array_equal(masks["vertical_fwd"], (rows <= 2) & (cols == 1))
    np.testing.assert_array_equal(masks["vertical_bwd"], (rows >= 2) & (cols == 1))
    np.testing.assert_array_equal(masks["horizontal_fwd"], cols <= 1)  # whole columns
    np.testing.assert_array_equal(masks["horizontal_bwd"], cols >= 1)
    deeper = context_reach_masks([(5, 4), (3, 2)], layer=1, row=0, col=0)
    assert all(mask.all() for mask in deeper.values())  # layer 1 sees the whole image
    with pytest.raises(ValueError, match="outside"):
        context_reach_masks([(5, 4)], layer=0, row=5, col=0)


def sweep_input_gradients(
    model, image: torch.Tensor, layer: int, row: int, col: int
) -> dict[str, np.ndarray]:
    """Which input pixels have a non-zero gradient for each sweep output at (row, col)."""
    captured: dict[str, torch.Tensor] = {}
    handles = [
        getattr(model.layers[layer], direction).register_forward_hook(
            lambda _m, inputs, _out, direction=direction: captured.__setitem__(direction, inputs[0])
        )
        for direction in SWEEP_DIRECTIONS
    ]
    support = {}
    try:
        x = image.clone().requires_grad_(True)
        model(x)
        for direction in SWEEP_DIRECTIONS:
            (grad,) = torch.autograd.grad(captured[direction][0, :, row, col].sum(), x, retain_graph=True)
            support[direction] = (grad[0].abs().sum(dim=0) > 0).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return support


@pytest.mark.parametrize(("layer", "row", "col"), [(0, 2, 1), (0, 4, 4), (0, 0, 3), (1, 1, 2)])
def test_context_reach_matches_autograd_on_a_real_renet(renet, layer, row, col) -> None:
    model, images, trace = renet
    masks = context_reach_masks(
        renet_grid_sizes(trace), layer, row, col, patch_sizes=model.config.patch_sizes, input_size=(9, 9)
    )
    support = sweep_input_gradients(model, images[:1], layer, row, col)
    for direction in SWEEP_DIRECTIONS:
        np.testing.assert_array_equal(masks[direction], support[direction], err_msg=direction)


def test_context_reach_figure(renet) -> None:
    model, images, trace = renet
    fig = plot_context_reach(trace, 0, 2, 1)
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert [t.name for t in heatmaps] == list(SWEEP_DIRECTIONS)
    legend = [t.name for t in fig.data if isinstance(t, go.Scatter)]
    assert legend == ["can influence", "cannot influence", "output patch"]
    expected = context_reach_masks([(5, 5)], 0, 2, 1)
    for heatmap in heatmaps:
        np.testing.assert_array_equal(np.asarray(heatmap.z), expected[heatmap.name].astype(np.uint8))
    outlines = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(outlines) == 4 and (outlines[0].x0, outlines[0].x1, outlines[0].y0) == (0.5, 1.5, 1.5)

    over_image = plot_context_reach(trace, 0, 2, 1, patch_sizes=model.config.patch_sizes, image=images[0])
    heatmaps = [t for t in over_image.data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) == 4 and sum(isinstance(t, go.Image) for t in over_image.data) == 4
    pixels = context_reach_masks([(5, 5)], 0, 2, 1, patch_sizes=[2, 2], input_size=(9, 9))
    np.testing.assert_array_equal(np.asarray(heatmaps[0].z), (~pixels["vertical_fwd"]).astype(np.uint8))
    outline = next(s for s in over_image.layout.shapes if s.type == "rect")
    assert (outline.x0, outline.x1, outline.y0, outline.y1) == (1.5, 3.5, 3.5, 5.5)  # a 2 x 2 pixel patch
    with pytest.raises(ValueError, match="patch_sizes"):
        plot_context_reach(trace, 0, 2, 1, image=images[0])


# --------------------------------------------------------------------------- sweep gates


@pytest.fixture(scope="module", params=["gru", "lstm"])
def gated_renet(request):
    torch.manual_seed(0)
    model = tiny_model("renet", cell=request.param)
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model, batch=2))
    return request.param, model, trace


def test_the_gates_found_in_the_trace_are_the_cells_gates(gated_renet) -> None:
    from crmn_viz.models.sweeps import GATES_BY_CELL

    cell, model, trace = gated_renet
    for layer in range(len(model.layers)):
        assert sweep_gate_names(trace.keys(), layer) == GATES_BY_CELL[cell]
        assert sweep_gate_names(model.trace_names(), layer) == GATES_BY_CELL[cell]
    assert sweep_gate_names(["layers.0.out", "layers.0.gates.vertical_fwd.update_gate"], 0) == ()
    # every sigmoid gate of either cell is drawn on [0, 1]; only the LSTM cell state is not
    assert BOUNDED_GATES | {"cell"} == set(GATES_BY_CELL["gru"]) | set(GATES_BY_CELL["lstm"])


def test_each_sweep_panel_is_the_channel_mean_of_its_traced_gate(gated_renet) -> None:
    cell, model, trace = gated_renet
    gates = sweep_gate_names(trace.keys(), 0)
    chosen = [(0, gate) for gate in gates] + [(1, gates[-1])]  # every gate of layer 0, one of layer 1
    for layer, gate in chosen:
        fig = plot_sweep_gates(trace, layer, gate, image_index=1)
        heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
        boxes = [t for t in fig.data if isinstance(t, go.Box)]
        assert [t.name for t in heatmaps] == list(SWEEP_DIRECTIONS)
        for heatmap, box, direction in zip(heatmaps, boxes, SWEEP_DIRECTIONS):
            traced = trace[f"layers.{layer}.gates.{direction}.{gate}"][1].double().numpy()  # [d, R, C]
            np.testing.assert_allclose(np.asarray(heatmap.z), traced.mean(axis=0), rtol=1e-6)
            np.testing.assert_allclose(np.asarray(box.y), traced.mean(axis=(1, 2)), rtol=1e-6)
            assert np.asarray(heatmap.z).shape == tuple(model.grid_sizes[layer])
        if gate in BOUNDED_GATES:
            assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0.0, 1.0)
        else:  # the LSTM cell state: signed, a scale symmetric about 0
            assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax
        assert [a.text for a in fig.layout.annotations][:4] == [SWEEP_LABELS[d] for d in SWEEP_DIRECTIONS]
        assert fig.layout.meta["gate"] == gate and fig.layout.meta["image_index"] == 1
    default = plot_sweep_gates(trace, 0)
    assert default.layout.meta["gate"] == ("update_gate" if cell == "gru" else "input_gate")


def test_sweep_gates_refuse_a_gate_the_trace_lacks(gated_renet) -> None:
    _, _, trace = gated_renet
    with pytest.raises(KeyError, match="no_such_gate"):
        plot_sweep_gates(trace, 0, "no_such_gate")
    with pytest.raises(KeyError, match="no gates of ReNet layer 0"):
        plot_sweep_gates({"layers.0.out": trace["layers.0.out"]}, 0)


def test_the_gate_view_traces_the_chosen_gate_of_the_image() -> None:
    import io

    from PIL import Image

    from crmn_viz.inputs.selection import SelectedImage
    from crmn_viz.views.compute import DirectCompute
    from crmn_viz.views.sweeps import renet_gate_names, sweep_gates_view

    torch.manual_seed(0)
    model = tiny_model("renet", cell="lstm")
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG")
    image = SelectedImage.from_bytes("noise.png", buffer.getvalue())
    run = DirectCompute()
    assert renet_gate_names(model, 1) == ("input_gate", "forget_gate", "output_gate", "cell")
    shown = sweep_gates_view(model, image, 1, "forget_gate", run)
    trace = run.trace(model, [image])
    for heatmap in (t for t in shown.figure.data if isinstance(t, go.Heatmap)):
        expected = trace[f"layers.1.gates.{heatmap.name}.forget_gate"][0].double().numpy().mean(axis=0)
        np.testing.assert_allclose(np.asarray(heatmap.z), expected, rtol=1e-5)
    assert dict(shown.settings) == {"layer": 1, "gate": "forget_gate"} and shown.images == (image,)
    assert dict(sweep_gates_view(model, image, 0, None, run).settings)["gate"] == "input_gate"
    with pytest.raises(ValueError, match="update_gate"):
        sweep_gates_view(model, image, 0, "update_gate", run)
    with pytest.raises(ValueError, match="layer must be"):
        sweep_gates_view(model, image, 2, None, run)
