"""CRMN: the LSTM equations re-derived from the trace, the padding, the fast path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from crmn_viz.models.crmn import step_input_sizes
from crmn_viz.models.reference import reference_crmn_lstm
from tests.conftest import random_input, tiny_model

GATES = ("input_gate", "forget_gate", "output_gate", "cell_candidate", "cell", "hidden")


@pytest.fixture
def traced():
    model = tiny_model("crmn")
    with torch.no_grad():
        model.lstm.bias.normal_()  # leave the initial values so the gates are non-trivial
        model.lstm.initial_hidden.normal_()
        out, trace = model.run_with_trace(random_input(model, 3))
    return model, out, trace


def test_trace_has_one_lstm_step_per_residual_block(traced):
    model, _, trace = traced
    n_blocks = 3 * ((model.config.depth - 2) // 6)
    assert model.num_steps == n_blocks
    for name in GATES:
        assert trace[f"lstm.{name}"].shape == (3, n_blocks, model.config.hidden_size)
    assert [f"blocks.{k}.out" in trace for k in range(n_blocks)] == [True] * n_blocks


def test_cell_update_matches_equation_5(traced):
    _, _, trace = traced
    cell, forget, inp, cand = (
        trace[f"lstm.{n}"] for n in ("cell", "forget_gate", "input_gate", "cell_candidate")
    )
    previous = torch.cat([torch.zeros_like(cell[:, :1]), cell[:, :-1]], dim=1)  # c_0 = 0
    torch.testing.assert_close(cell, forget * previous + inp * cand, atol=1e-6, rtol=0)


def test_hidden_state_matches_equation_7(traced):
    _, _, trace = traced
    expected = trace["lstm.output_gate"] * torch.tanh(trace["lstm.cell"])
    torch.testing.assert_close(trace["lstm.hidden"], expected, atol=1e-6, rtol=0)


def test_gates_match_equations_2_to_4_and_6_with_peepholes(traced):
    model, _, trace = traced
    lstm = model.lstm
    x = trace["lstm.input"]
    h = trace["lstm.hidden"]
    c = trace["lstm.cell"]
    h_prev = torch.cat([lstm.initial_hidden.expand(x.shape[0], 1, -1), h[:, :-1]], dim=1)
    c_prev = torch.cat([torch.zeros_like(c[:, :1]), c[:, :-1]], dim=1)
    hid = lstm.hidden_size
    w_x = {g: lstm.input_weight[k * hid : (k + 1) * hid] for k, g in enumerate("ifos")}
    w_h = {g: lstm.hidden_weight[k * hid : (k + 1) * hid] for k, g in enumerate("ifos")}
    b = {g: lstm.bias[k * hid : (k + 1) * hid] for k, g in enumerate("ifos")}
    with torch.no_grad():
        i = torch.sigmoid(x @ w_x["i"].T + h_prev @ w_h["i"].T + lstm.peephole[0] * c_prev + b["i"])
        f = torch.sigmoid(x @ w_x["f"].T + h_prev @ w_h["f"].T + lstm.peephole[1] * c_prev + b["f"])
        o = torch.sigmoid(x @ w_x["o"].T + h_prev @ w_h["o"].T + lstm.peephole[2] * c + b["o"])
        s = torch.tanh(x @ w_x["s"].T + h_prev @ w_h["s"].T + b["s"])
    for name, value in (("input_gate", i), ("forget_gate", f), ("output_gate", o), ("cell_candidate", s)):
        torch.testing.assert_close(trace[f"lstm.{name}"], value, atol=1e-5, rtol=0)


def test_step_inputs_are_mean_pooled_flattened_and_zero_padded(traced):
    model, _, trace = traced
    x = trace["lstm.input"]
    sizes = step_input_sizes(model.config)
    assert x.shape[-1] == max(sizes) == sizes[0]
    for k, stage in enumerate(model.stage_of_block):
        pooled = F.avg_pool2d(trace[f"blocks.{k}.out"], model.config.pool).flatten(1)
        assert pooled.shape[1] == sizes[stage]
        torch.testing.assert_close(x[:, k, : sizes[stage]], pooled)
        assert torch.count_nonzero(x[:, k, sizes[stage] :]) == 0
    later = [k for k, s in enumerate(model.stage_of_block) if s > 0]
    assert later, "the tiny model must have blocks in the smaller stages"


def test_fast_stage_sliced_lstm_equals_zero_padded_reference(traced):
    model, _, trace = traced
    with torch.no_grad():
        reference = reference_crmn_lstm(model.lstm, trace["lstm.input"])
    for name in GATES:
        assert (reference[name] - trace[f"lstm.{name}"]).abs().max() <= 1e-5


def test_fast_path_gradients_equal_reference_gradients():
    model = tiny_model("crmn")
    x = random_input(model)
    _, trace = model.run_with_trace(x)
    padded = trace["lstm.input"].clone()
    stage_inputs = model.pool_block_outputs([trace[f"blocks.{k}.out"] for k in range(model.num_steps)])
    fast = model.lstm(stage_inputs)[:, -1].sum()
    grads_fast = torch.autograd.grad(fast, list(model.lstm.parameters()))
    slow = reference_crmn_lstm(model.lstm, padded)["hidden"][:, -1].sum()
    grads_slow = torch.autograd.grad(slow, list(model.lstm.parameters()))
    for a, b in zip(grads_fast, grads_slow):
        assert (a - b).abs().max() <= 1e-5


def test_lstm_never_feeds_back_into_the_resnet():
    model = tiny_model("crmn")
    x = random_input(model)
    with torch.no_grad():
        _, before = model.run_with_trace(x)
        for p in model.lstm.parameters():
            p.add_(torch.randn_like(p))
        logits_after, after = model.run_with_trace(x)
    for k in range(model.num_steps):
        torch.testing.assert_close(before[f"blocks.{k}.out"], after[f"blocks.{k}.out"])
    assert not torch.allclose(before["logits"], logits_after)


def test_initialisation_negative_forget_bias_orthogonal_gates_learned_initial_state():
    model = tiny_model("crmn")
    lstm = model.lstm
    hid = lstm.hidden_size
    assert (lstm.bias[hid : 2 * hid] < 0).all()
    assert lstm.initial_hidden.requires_grad
    for k in range(4):
        w = lstm.hidden_weight[k * hid : (k + 1) * hid].detach()
        torch.testing.assert_close(w @ w.T, torch.eye(hid), atol=1e-5, rtol=0)
        w_in = lstm.input_weight[k * hid : (k + 1) * hid].detach()  # semi-orthogonal rows
        torch.testing.assert_close(w_in @ w_in.T, torch.eye(hid), atol=1e-5, rtol=0)


def test_features_concatenate_final_hidden_state_and_global_average_pool(traced):
    _, _, trace = traced
    torch.testing.assert_close(
        trace["features"], torch.cat([trace["lstm.hidden"][:, -1], trace["pooled"]], dim=1)
    )


def test_head_on_every_step_reproduces_the_final_output(traced):
    model, out, trace = traced
    per_step = model.head(trace["lstm.hidden"], trace["pooled"])
    torch.testing.assert_close(per_step[:, -1], out)


def test_keypoint_model_outputs_normalised_coordinates_with_4x4_pooling():
    model = tiny_model("crmn", task="keypoints", num_outputs=10, pool=4, input_size=32)
    out, trace = model.run_with_trace(random_input(model))
    assert out.shape == (2, 5, 2)
    assert ((out > 0) & (out < 1)).all()
    assert "keypoints" in trace and "logits" not in trace
    assert trace["lstm.input"].shape[-1] == 4 * 8 * 8


def test_tanh_output_gate_option_is_available_for_the_2016_text_reading():
    model = tiny_model("crmn", output_gate_activation="tanh")
    _, trace = model.run_with_trace(random_input(model))
    assert (trace["lstm.output_gate"] < 0).any()


def test_invalid_depth_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="6n\\+2"):
        tiny_model("crmn", depth=21)
