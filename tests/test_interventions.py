"""Interventions on trace names: the fast path against literal re-derivations (reference LSTM,
hand-written equations, hand-run layers), validation, thread safety, nothing left behind."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import crmn_viz
from crmn_viz import Clamp, MeanAblate, Patch, Scale, list_architectures
from crmn_viz.interventions import active_interventions, applying
from crmn_viz.models.reference import reference_crmn_lstm
from tests.conftest import random_input, tiny_model

QUANTITIES = ("input_gate", "forget_gate", "output_gate", "cell_candidate", "cell", "hidden")


def _step_sizes(model) -> list[int]:  # type: ignore[no-untyped-def]
    """The unpadded size D_s of each step's input x_l."""
    return [model.step_sizes[stage] for stage in model.stage_of_block]


def _traced(model, x, interventions=None):  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model.run_with_trace(x, interventions=interventions)


def _reference(model, x, edit=None, input_edit=None):  # type: ignore[no-untyped-def]
    """The CRMN's LSTM quantities and logits from the literal eqs. 2-7 loop with ``edit``."""
    with torch.no_grad():
        blocks, final = model.run_trunk(x)
        padded = model.lstm.padded_inputs(model.pool_block_outputs(blocks))
        if input_edit is not None:
            padded = input_edit(padded.clone())
        history = reference_crmn_lstm(model.lstm, padded, edit)
        logits = model.head(history["hidden"][:, -1], final.mean(dim=(2, 3)))
    return history, logits


@pytest.mark.parametrize("arch", list_architectures())
def test_no_interventions_give_exactly_the_plain_forward(arch):
    model = tiny_model(arch)
    x = random_input(model, 3)
    with torch.no_grad():
        plain = model(x)
    for none in (None, []):
        out, trace = _traced(model, x, none)
        assert torch.equal(out, plain)
        assert torch.equal(trace[model.output_name], plain)
    assert active_interventions() is None


def test_forget_gate_one_and_input_gate_zero_from_step_l_keep_the_cell_of_step_l_minus_one():
    model = tiny_model("crmn")
    x = random_input(model, 2)
    steps = list(range(2, model.num_steps))
    _, trace = _traced(
        model, x, [Clamp("lstm.forget_gate", 1.0, steps=steps), Clamp("lstm.input_gate", 0.0, steps)]
    )
    cell = trace["lstm.cell"]
    _, intact = _traced(model, x)
    assert torch.equal(cell[:, :2], intact["lstm.cell"][:, :2])
    for step in steps:
        assert torch.equal(cell[:, step], cell[:, 1])
    assert not torch.allclose(intact["lstm.cell"][:, -1], cell[:, 1])  # without the clamps it moves


def test_clamps_scales_means_and_patches_match_the_reference_lstm():
    model = tiny_model("crmn")
    x = random_input(model, 3)
    source = random_input(model, 2) * 2.0
    _, source_trace = _traced(model, source)
    steps, hidden = model.num_steps, model.config.hidden_size
    means = torch.linspace(0.1, 0.9, steps * hidden).view(steps, hidden)
    interventions = [
        Clamp("lstm.forget_gate", 0.3, steps=[1, 3], units=[0, 2]),
        Scale("lstm.cell", 0.5, steps=2),
        MeanAblate("lstm.input_gate", means, steps=[4]),
        Patch("lstm.hidden", source_trace, source_index=1, steps=[3], units=[1, 4, 5]),
        Clamp("lstm.output_gate", 1.0, units=[3]),
        Scale("lstm.cell_candidate", -1.0, steps=[0, 5]),
    ]
    patched_hidden = source_trace["lstm.hidden"][1, 3]

    def edit(name: str, step: int, value: torch.Tensor) -> torch.Tensor:
        value = value.clone()
        if name == "forget_gate" and step in (1, 3):
            value[:, [0, 2]] = 0.3
        if name == "cell" and step == 2:
            value = value * 0.5
        if name == "input_gate" and step == 4:
            value[:] = means[4]
        if name == "hidden" and step == 3:
            value[:, [1, 4, 5]] = patched_hidden[[1, 4, 5]]
        if name == "output_gate":
            value[:, 3] = 1.0
        if name == "cell_candidate" and step in (0, 5):
            value = -value
        return value

    out, trace = _traced(model, x, interventions)
    expected, logits = _reference(model, x, edit)
    for name in QUANTITIES:
        torch.testing.assert_close(trace[f"lstm.{name}"], expected[name], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-5)
    _, intact = _traced(model, x)
    assert not torch.allclose(intact["logits"], out, atol=1e-4)


def test_input_interventions_match_the_reference_on_padded_inputs_and_leave_the_padding_zero():
    model = tiny_model("crmn")
    x = random_input(model, 2)
    padded_size = model.lstm.input_size
    last_unit = padded_size - 1
    out, trace = _traced(
        model, x, [Clamp("lstm.input", 0.0, steps=[3]), Clamp("lstm.input", 2.0, units=[0, last_unit])]
    )

    def input_edit(padded: torch.Tensor) -> torch.Tensor:
        padded[:, 3] = 0.0
        padded[:, :, 0] = 2.0
        for step, size in enumerate(_step_sizes(model)):
            if size > last_unit:
                padded[:, step, last_unit] = 2.0
        return padded

    expected, logits = _reference(model, x, input_edit=input_edit)
    for name in QUANTITIES:
        torch.testing.assert_close(trace[f"lstm.{name}"], expected[name], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-5)
    recorded = trace["lstm.input"]
    for step, size in enumerate(_step_sizes(model)):
        assert torch.all(recorded[:, step, size:] == 0)  # the zero padding is never edited
        assert torch.all(recorded[:, step, 0] == 2.0)


def test_patching_every_state_at_step_l_from_b_then_feeding_a_equals_the_hand_computation():
    model = tiny_model("crmn", peephole=True)
    image_a, image_b = random_input(model, 1), random_input(model, 1) + 1.0
    _, trace_b = _traced(model, image_b)
    step = 2
    states = [Patch(f"lstm.{name}", trace_b, steps=[step]) for name in QUANTITIES]
    out, patched = _traced(model, image_a, states)
    for name in QUANTITIES:
        assert torch.equal(patched[f"lstm.{name}"][:, step], trace_b[f"lstm.{name}"][:, step])

    # eqs. 2-7 written out from B's (c_l, h_l), on A's step inputs l+1 .. T-1
    lstm = model.lstm
    with torch.no_grad():
        blocks, final = model.run_trunk(image_a)
        inputs = lstm.padded_inputs(model.pool_block_outputs(blocks))
        cell, hidden = trace_b["lstm.cell"][:, step], trace_b["lstm.hidden"][:, step]
        size = lstm.hidden_size
        w_x, w_h, b, w_c = lstm.input_weight, lstm.hidden_weight, lstm.bias, lstm.peephole
        for later in range(step + 1, model.num_steps):
            z = inputs[:, later] @ w_x.T + hidden @ w_h.T + b
            i = torch.sigmoid(z[:, :size] + w_c[0] * cell)
            f = torch.sigmoid(z[:, size : 2 * size] + w_c[1] * cell)
            s = torch.tanh(z[:, 3 * size :])
            cell = f * cell + i * s
            o = torch.sigmoid(z[:, 2 * size : 3 * size] + w_c[2] * cell)
            hidden = o * torch.tanh(cell)
            torch.testing.assert_close(patched["lstm.cell"][:, later], cell, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(patched["lstm.hidden"][:, later], hidden, atol=1e-5, rtol=1e-5)
        logits = model.fc(torch.cat([hidden, final.mean(dim=(2, 3))], dim=1))
    torch.testing.assert_close(out, logits, atol=1e-5, rtol=1e-5)


def test_mean_ablation_uses_the_given_means():
    model = tiny_model("crmn")
    x = random_input(model, 4)
    steps, hidden = model.num_steps, model.config.hidden_size
    per_step = torch.rand(steps, hidden)
    per_unit = torch.rand(hidden)
    _, trace = _traced(
        model, x, [MeanAblate("lstm.input_gate", per_step), MeanAblate("lstm.hidden", per_unit, steps=5)]
    )
    assert torch.equal(trace["lstm.input_gate"], per_step.expand(4, -1, -1))
    assert torch.equal(trace["lstm.hidden"][:, 5], per_unit.expand(4, -1))
    assert torch.equal(trace["features"][:, :hidden], per_unit.expand(4, -1))

    resnet = tiny_model("resnet")
    x = random_input(resnet, 3)
    channels = resnet.blocks[1].conv2.out_channels
    means = torch.randn(channels)
    out, trace = _traced(resnet, x, [MeanAblate("blocks.1.out", means.numpy())])
    assert torch.equal(trace["blocks.1.out"], means.view(1, -1, 1, 1).expand_as(trace["blocks.1.out"]))
    with torch.no_grad():  # the rest of the network, run by hand on the means
        h = means.view(1, -1, 1, 1).expand_as(trace["blocks.1.out"]).contiguous()
        for block in resnet.blocks[2:]:
            h = block(h)
        expected = resnet.fc(h.mean(dim=(2, 3)))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_memory_off_through_the_hidden_state_equals_clamping_the_features():
    model = tiny_model("crmn")
    x = random_input(model, 3)
    last, hidden = model.num_steps - 1, model.config.hidden_size
    by_hidden, _ = _traced(model, x, [Clamp("lstm.hidden", 0.0, steps=last)])
    by_features, _ = _traced(model, x, [Clamp("features", 0.0, units=range(hidden))])
    torch.testing.assert_close(by_hidden, by_features, atol=0, rtol=0)


def test_a_per_image_scale_factor_carries_gradients():
    model = tiny_model("crmn")
    x = random_input(model, 1).expand(3, -1, -1, -1)
    alpha = torch.tensor([0.2, 0.5, 1.0], requires_grad=True)
    out, _ = model.run_with_trace(x, names=[], interventions=[Scale("lstm.input", alpha, steps=[2])])
    out[:, 0].sum().backward()
    eps = 1e-3
    for row, value in enumerate((0.2, 0.5, 1.0)):
        with torch.no_grad():
            up, _ = model.run_with_trace(x[:1], interventions=[Scale("lstm.input", value + eps, steps=[2])])
            down, _ = model.run_with_trace(x[:1], interventions=[Scale("lstm.input", value - eps, steps=[2])])
        numeric = (up[0, 0] - down[0, 0]) / (2 * eps)
        torch.testing.assert_close(alpha.grad[row], numeric, atol=2e-3, rtol=2e-2)


def test_unknown_names_steps_and_units_are_refused_with_the_valid_ones():
    model = tiny_model("crmn")
    x = random_input(model)
    with pytest.raises(ValueError, match=r"unknown intervention name 'lstm.forgetgate'.*lstm.forget_gate"):
        model.run_with_trace(x, interventions=[Clamp("lstm.forgetgate", 1.0)])
    with pytest.raises(ValueError, match=r"step 6 is out of range .* valid steps are 0..5"):
        model.run_with_trace(x, interventions=[Clamp("lstm.forget_gate", 1.0, steps=[6])])
    with pytest.raises(ValueError, match=r"unit 6 is out of range .* valid units are 0..5"):
        model.run_with_trace(x, interventions=[Clamp("lstm.cell", 1.0, units=[6])])
    with pytest.raises(ValueError, match=r"has no steps"):
        model.run_with_trace(x, interventions=[Clamp("blocks.2.out", 0.0, steps=[2])])
    with pytest.raises(ValueError, match=r"unit 40 is out of range for blocks.0.out, which has 4 units"):
        model.run_with_trace(x, interventions=[Clamp("blocks.0.out", 0.0, units=[40])])
    with pytest.raises(ValueError, match=r"must be \[6, units\]"):
        model.run_with_trace(x, interventions=[MeanAblate("lstm.cell", torch.zeros(5, 6))])
    with pytest.raises(TypeError, match="Clamp, Scale, MeanAblate or Patch"):
        model.run_with_trace(x, interventions=[("lstm.cell", 0.0)])  # type: ignore[list-item]
    renet = tiny_model("renet")
    with pytest.raises(ValueError, match="unknown intervention name"):  # a view of gates, not editable
        renet.run_with_trace(
            random_input(renet), interventions=[Clamp("layers.0.gates.vertical_fwd.reset_gate", 0)]
        )
    assert active_interventions() is None  # nothing stays behind after an error


def test_an_error_inside_the_forward_pass_leaves_nothing_behind():
    model = tiny_model("crmn")
    with pytest.raises(ValueError, match="out of range"):
        model.run_with_trace(random_input(model), interventions=[Clamp("pooled", 0.0, units=[999])])
    assert active_interventions() is None
    with applying(model, [Clamp("logits", 0.0)]):
        assert torch.equal(model(random_input(model)), torch.zeros(2, 5))
    assert active_interventions() is None


def test_eight_threads_with_different_interventions_on_one_model_get_the_sequential_results():
    model = tiny_model("crmn")
    x = random_input(model, 2)
    _, source = _traced(model, random_input(model, 2))
    experiments = [
        [],
        [Clamp("lstm.forget_gate", 1.0)],
        [Clamp("lstm.input", 0.0, steps=[3])],
        [Scale("lstm.cell", 0.5, steps=[1, 2])],
        [Patch("lstm.hidden", source, 1, steps=[3])],
        [Clamp("blocks.2.out", 0.0, units=[0, 1])],
        [MeanAblate("lstm.output_gate", torch.full((6,), 0.5))],
        [Clamp("lstm.cell", 0.0, steps=[4]), Clamp("lstm.hidden", 0.0, steps=[4])],
    ]
    sequential = [_traced(model, x, items) for items in experiments]

    def run(index: int):  # type: ignore[no-untyped-def]
        return _traced(model, x, experiments[index % len(experiments)])

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(32)))
    for index, (out, trace) in enumerate(results):
        want_out, want_trace = sequential[index % len(experiments)]
        assert torch.equal(out, want_out)
        for name in ("lstm.cell", "lstm.hidden", "blocks.2.out"):
            assert torch.equal(trace[name], want_trace[name])
    assert len({tuple(out.flatten().tolist()) for out, _ in sequential}) == len(experiments)


def test_renet_ablating_one_direction_of_layer_0_leaves_the_others_of_that_layer_unchanged():
    model = tiny_model("renet")
    x = random_input(model, 2)
    _, intact = _traced(model, x)
    directions = model.sweep_names
    for direction in directions:
        out, trace = _traced(model, x, [Clamp(f"layers.0.{direction}", 0.0)])
        assert torch.all(trace[f"layers.0.{direction}"] == 0)
        # the horizontal sweeps read V = [vertical_fwd; vertical_bwd], so ablating a vertical
        # direction changes them; every direction of the same pair stays as it was
        unchanged = [
            d
            for d in directions
            if d != direction and (d.startswith("vertical") or direction.startswith("horizontal"))
        ]
        for other in unchanged:
            assert torch.equal(trace[f"layers.0.{other}"], intact[f"layers.0.{other}"]), (direction, other)
        assert not torch.allclose(out, intact["logits"])
    _, trace = _traced(model, x, [Clamp("layers.0.horizontal_bwd", 0.0)])
    assert len([d for d in directions if torch.equal(trace[f"layers.0.{d}"], intact[f"layers.0.{d}"])]) == 3


def test_rir_with_the_transient_stream_zeroed_runs_on_the_residual_stream_alone():
    model = tiny_model("rir")
    x = random_input(model, 2)
    assert model.removable_streams == ("transient",)
    zeroed = [Clamp(f"blocks.{k}.transient", 0.0) for k in range(model.block_count)]
    out, trace = _traced(model, x, zeroed)
    for k in range(model.block_count):
        assert torch.all(trace[f"blocks.{k}.transient"] == 0)
    width = model.config.widths[-1]
    assert torch.equal(trace["features"][:, width:], torch.zeros(2, width))
    # the first RiR block's second generalized block by hand: r' = relu(bn(conv([r; 0])) + outer)
    assert model.rir_groups[0] == [0, 1] and model.outer_shortcuts is not None
    with torch.no_grad():
        stem = torch.relu(model.stem_bn(model.stem(x)))
        block_input = stem[:, : model.config.widths[0]]
        r0 = trace["blocks.0.residual"]
        z_r, _ = model.blocks[1].pre_activation(r0, torch.zeros_like(r0))
        expected = torch.relu(z_r + model.outer_shortcuts[0](block_input))
    torch.testing.assert_close(trace["blocks.1.residual"], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, _traced(model, x)[0])


def test_public_names_are_exported():
    assert crmn_viz.Clamp is Clamp and crmn_viz.Scale is Scale
    assert crmn_viz.MeanAblate is MeanAblate and crmn_viz.Patch is Patch
    assert Clamp("lstm.forget_gate", 1.0, steps=[3, 4, 5, 8], units=[0]).describe() == (
        "lstm.forget_gate := 1 (steps 3-5, 8, units 0)"
    )
