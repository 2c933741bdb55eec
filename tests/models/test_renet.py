"""ReNet: sweep causality, patch splitting, batched sweeps equal the per-patch loop."""

from __future__ import annotations

import pytest
import torch

from crmn_viz.models.reference import reference_renet_layer
from crmn_viz.models.renet import split_into_patches
from tests.conftest import random_input, tiny_model


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[rows, cols] mask of patch positions where any channel of any image differs."""
    return (a - b).abs().amax(dim=(0, 1)) > 1e-7


@pytest.fixture
def model():
    return tiny_model("renet", input_size=12)


def test_patch_grid_and_padding_for_inputs_not_multiple_of_patch():
    m = tiny_model("renet", input_size=9)
    _, trace = m.run_with_trace(random_input(m))
    assert trace["layers.0.vertical_fwd"].shape == (2, 4, 5, 5)  # ceil(9 / 2)
    assert trace["layers.1.out"].shape == (2, 6, 3, 3)
    x = torch.arange(2 * 3 * 3, dtype=torch.float32).reshape(1, 2, 3, 3)
    patches = split_into_patches(x, (2, 2))
    assert patches.shape == (1, 2, 2, 8)
    # bottom-right patch holds x[:, 2, 2] and zero padding, in (channel, row, col) order
    assert patches[0, 1, 1].tolist() == [8.0, 0, 0, 0, 17.0, 0, 0, 0]


def test_vertical_sweeps_are_causal_along_their_column(model):
    x = random_input(model)
    with torch.no_grad():
        _, base = model.run_with_trace(x)
        row, col = 2, 3  # patch row 2, patch column 3 of the 2x2 grid
        x2 = x.clone()
        x2[:, :, 2 * row : 2 * row + 2, 2 * col : 2 * col + 2] += 1.0
        _, moved = model.run_with_trace(x2)
    fwd = changed(base["layers.0.vertical_fwd"], moved["layers.0.vertical_fwd"])
    bwd = changed(base["layers.0.vertical_bwd"], moved["layers.0.vertical_bwd"])
    rows = torch.arange(fwd.shape[0])[:, None].expand_as(fwd)
    cols = torch.arange(fwd.shape[1])[None, :].expand_as(fwd)
    assert torch.equal(fwd, (cols == col) & (rows >= row))  # top-down: at and below
    assert torch.equal(bwd, (cols == col) & (rows <= row))  # bottom-up: at and above


def test_changing_one_patch_row_changes_vertical_fwd_only_at_and_below_it(model):
    x = random_input(model)
    with torch.no_grad():
        _, base = model.run_with_trace(x)
        x2 = x.clone()
        x2[:, :, 6:8, :] -= 0.5  # patch row 3, every column
        _, moved = model.run_with_trace(x2)
    fwd = changed(base["layers.0.vertical_fwd"], moved["layers.0.vertical_fwd"])
    bwd = changed(base["layers.0.vertical_bwd"], moved["layers.0.vertical_bwd"])
    assert not fwd[:3].any() and fwd[3:].all()
    assert not bwd[4:].any() and bwd[:4].all()


def test_horizontal_sweeps_are_causal_along_their_row_and_see_the_whole_image(model):
    x = random_input(model)
    with torch.no_grad():
        _, base = model.run_with_trace(x)
        x2 = x.clone()
        x2[:, :, 4:6, 4:6] += 1.0  # patch (2, 2)
        _, moved = model.run_with_trace(x2)
    fwd = changed(base["layers.0.horizontal_fwd"], moved["layers.0.horizontal_fwd"])
    bwd = changed(base["layers.0.horizontal_bwd"], moved["layers.0.horizontal_bwd"])
    # vertical sweeps spread the change over column 2; horizontal ones then sweep rows:
    assert not fwd[:, :2].any() and fwd[:, 2:].all()  # left-to-right: at and right of col 2
    assert not bwd[:, 3:].any() and bwd[:, :3].all()
    assert changed(base["layers.0.out"], moved["layers.0.out"]).all()  # whole-image context


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_batched_sweeps_equal_the_per_patch_reference(cell):
    m = tiny_model("renet", cell=cell, patch_sizes=[2, [3, 2]], input_size=9)
    x = random_input(m)
    with torch.no_grad():
        _, trace = m.run_with_trace(x)
        ref0 = reference_renet_layer(m.layers[0], x)
        ref1 = reference_renet_layer(m.layers[1], trace["layers.0.out"])
    for k, ref in ((0, ref0), (1, ref1)):
        for name, value in ref.items():
            assert (value - trace[f"layers.{k}.{name}"]).abs().max() <= 1e-5


def test_gru_gates_match_the_paper_update_equation(model):
    with torch.no_grad():
        _, trace = model.run_with_trace(random_input(model))
    h = trace["layers.0.vertical_fwd"]  # [B, d, rows, cols], sweep along rows
    u = trace["layers.0.gates.vertical_fwd.update_gate"]
    r = trace["layers.0.gates.vertical_fwd.reset_gate"]
    assert ((u > 0) & (u < 1)).all() and ((r > 0) & (r < 1)).all()
    # h_t = (1 - u_t) h_{t-1} + u_t h~_t with |h~| < 1  =>  |h_t - (1-u) h_{t-1}| < u
    h_prev = torch.cat([torch.zeros_like(h[:, :, :1]), h[:, :, :-1]], dim=2)
    assert ((h - (1 - u) * h_prev).abs() <= u + 1e-6).all()


def test_lstm_cell_exposes_its_gates():
    m = tiny_model("renet", cell="lstm")
    _, trace = m.run_with_trace(random_input(m))
    for gate in ("input_gate", "forget_gate", "output_gate", "cell"):
        assert trace[f"layers.1.gates.horizontal_bwd.{gate}"].shape == (2, 3, 3, 3)


def test_dropout_only_in_training_mode():
    m = tiny_model("renet", dropout=0.5, input_dropout=0.2)
    x = random_input(m)
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))
