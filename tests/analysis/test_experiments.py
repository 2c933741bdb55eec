"""Ready-made experiments, their dataset effect, step attribution and the ``ablate`` command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from crmn_viz import Clamp, MeanAblate
from crmn_viz.analysis.experiments import (
    ExperimentSpec,
    build_experiment,
    dataset_effect,
    experiment_families,
    experiment_means,
    memory_off,
    run_experiment,
    skip_block_write,
    standard_experiments,
    swap_state,
)
from crmn_viz.analysis.step_attribution import step_attribution
from crmn_viz.interventions import applying
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input

REPO = Path(__file__).resolve().parents[2]


def _batches(model, count: int = 3, size: int = 8, classes: int = 5, seed: int = 0):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(size, *model.input_shape, generator=generator),
            torch.randint(0, classes, (size,), generator=generator),
        )
        for _ in range(count)
    ]


def test_which_experiments_apply_is_read_from_the_capabilities():
    crmn, renet, rir, resnet = (tiny_analysis_model(a) for a in ("crmn", "renet", "rir", "resnet"))
    keys = [e.key for e in standard_experiments(crmn)]
    assert (
        keys[0] == "memory_off_zero" and [f"skip_block_{k}_zero" for k in range(crmn.num_steps)] == keys[1:7]
    )
    assert {"forget_1", "forget_0"} <= set(keys)
    means = experiment_means(crmn, _batches(crmn))
    with_means = [e.key for e in standard_experiments(crmn, means)]
    assert "memory_off_mean" in with_means and "skip_block_5_mean" in with_means
    assert [e.key for e in standard_experiments(renet)] == [
        f"sweep_{layer}_{sweep}" for layer in range(2) for sweep in renet.sweep_names
    ]
    assert [e.key for e in standard_experiments(rir)] == ["transient_zeroed"]
    assert standard_experiments(resnet) == [] and experiment_families(resnet) == ()
    with pytest.raises(ValueError, match="has_memory"):
        memory_off(resnet)


def test_experiment_means_are_the_means_of_the_traced_values():
    model = tiny_analysis_model("crmn")
    batches = _batches(model)
    means = experiment_means(model, batches)
    with torch.no_grad():
        _, trace = model.run_with_trace(torch.cat([x for x, _ in batches]))
    torch.testing.assert_close(means["lstm.input"], trace["lstm.input"].mean(0), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(means["lstm.hidden"], trace["lstm.hidden"].mean(0), atol=1e-6, rtol=1e-5)
    experiment = skip_block_write(model, 4, means["lstm.input"])
    assert isinstance(experiment.interventions[0], MeanAblate)
    with torch.no_grad():
        _, edited = model.run_with_trace(batches[0][0], interventions=experiment.interventions)
    size = model.step_sizes[model.stage_of_block[4]]
    torch.testing.assert_close(edited["lstm.input"][:, 4, :size], means["lstm.input"][4, :size].expand(8, -1))


def test_dataset_effect_rows_are_the_accuracies_of_the_plain_and_intervened_passes():
    model = tiny_analysis_model("crmn")
    batches = _batches(model)
    experiments = [memory_off(model), skip_block_write(model, 2)]
    effect = dataset_effect(model, batches, experiments, resamples=200, seed=3)
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    with torch.no_grad():
        expected = [(model(x).argmax(1) == y).double().mean().item()]
        for experiment in experiments:
            with applying(model, experiment.interventions):
                expected.append((model(x).argmax(1) == y).double().mean().item())
    assert [row.experiment for row in effect.rows] == ["intact", "memory_off_zero", "skip_block_2_zero"]
    assert [row.value for row in effect.rows] == pytest.approx(expected, abs=1e-12)
    for row in effect.rows:
        assert row.ci_low <= row.value <= row.ci_high and row.images == 24
        assert row.change == pytest.approx(row.value - expected[0], abs=1e-12)
        assert row.change_low <= row.change <= row.change_high
        counts = sum(n for *_, n in row.per_class.values())
        assert counts == 24
        for name, (value, low, high, n) in row.per_class.items():
            label = int(name.split()[-1])
            assert value == pytest.approx(
                ((model_pred(model, x, experiments, row) == y)[y == label]).double().mean().item()
            )
            assert low <= value <= high and n == int((y == label).sum())
    again = dataset_effect(model, batches, experiments, resamples=200, seed=3)
    assert again.to_rows() == effect.to_rows()
    row = effect.to_rows()[0]
    assert {"experiment", "accuracy", "ci_low", "ci_high", "images"} <= set(row)


def model_pred(model, x, experiments, row):  # type: ignore[no-untyped-def]
    """The class predictions of ``row``'s pass."""
    chosen = [e for e in experiments if e.key == row.experiment]
    with torch.no_grad(), applying(model, chosen[0].interventions if chosen else None):
        return model(x).argmax(1)


def test_a_keypoint_model_reports_nme():
    model = tiny_keypoint_crmn()
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(6, 68, 2, generator=generator)
    batches = [(torch.randn(6, *model.input_shape, generator=generator), truth)]
    effect = dataset_effect(model, batches, [memory_off(model)], resamples=100)
    from crmn_viz.analysis.keypoint_evaluation import normalised_mean_errors

    with torch.no_grad():
        nme = normalised_mean_errors(model(batches[0][0]), truth).mean().item()
    assert effect.metric == "nme" and effect.intact.value == pytest.approx(nme)
    assert effect.intact.per_class == {} and "nme" in effect.to_rows()[1]


def test_a_swap_patches_b_state_at_step_l_and_the_readout_follows():
    model = tiny_analysis_model("crmn")
    image_a, image_b = random_input(model, 1), random_input(model, 1) * 3
    with torch.no_grad():
        _, trace_b = model.run_with_trace(image_b)
    run = run_experiment(model, image_a, swap_state(model, trace_b, 3))
    for name in ("lstm.cell", "lstm.hidden"):
        assert torch.equal(run.intervened_trace[name][:, 3], trace_b[name][:, 3])
        assert torch.equal(run.intervened_trace[name][:, :3], run.intact_trace[name][:, :3])
    assert torch.equal(run.intact_steps[:, :3], run.intervened_steps[:, :3])
    torch.testing.assert_close(run.intervened_steps[:, -1], run.intervened)
    assert not torch.allclose(run.intact_steps[:, 3:], run.intervened_steps[:, 3:])


def test_specs_build_the_experiments_a_front_end_asks_for():
    model = tiny_analysis_model("crmn")
    spec = ExperimentSpec("forget_clamp", step=2, units=(0, 3), value=1.0)
    experiment = build_experiment(model, spec)
    (clamp,) = experiment.interventions
    assert isinstance(clamp, Clamp) and clamp.value == 1.0
    assert list(clamp.steps) == [2, 3, 4, 5] and list(clamp.units) == [0, 3]
    assert build_experiment(model, ExperimentSpec("cell_reset", step=1)).key == "cell_reset_1"
    with pytest.raises(ValueError, match="does not apply"):
        build_experiment(model, ExperimentSpec("sweep_ablated"))
    with pytest.raises(ValueError, match="image B"):
        build_experiment(model, ExperimentSpec("swap", step=1))


@pytest.mark.parametrize("arch", ["crmn", "resnet"])
def test_step_attribution_adds_up_to_the_change_of_the_target(arch):
    model = tiny_analysis_model(arch)
    x = random_input(model, 1)
    result = step_attribution(model, x, target=1, n_steps=64)
    with torch.no_grad():
        value = model(x)[0, 1].item()
    assert result.target_value == pytest.approx(value, abs=1e-5)
    assert len(result.blocks) == model.block_count == len(result.blocks_gap)
    # a block's output reaches the target through ReLUs: the path's integrand has kinks, so the
    # quadrature converges slowly there (the LSTM path below is smooth and far tighter)
    scale = max(1.0, float(np.abs(result.blocks).max()))
    assert np.abs(result.blocks_gap).max() < 0.05 * scale
    if model.has_memory:
        assert result.step_inputs is not None and len(result.step_inputs) == model.num_steps
        with torch.no_grad():
            zero = model.run_with_trace(x, interventions=[Clamp("lstm.input", 0.0)])[0][0, 1].item()
        assert result.step_inputs.sum() == pytest.approx(value - zero, abs=1e-3)
        assert abs(result.step_inputs_gap) < 1e-3
    else:
        assert result.step_inputs is None
    assert all(p.grad is None for p in model.parameters())  # a shared model is left as it was


def test_step_attribution_of_a_gate_unit_ignores_later_blocks():
    from crmn_viz.analysis.attributions import GateTarget

    model = tiny_analysis_model("crmn")
    result = step_attribution(model, random_input(model, 1), GateTarget("forget_gate", 2, 3), n_steps=32)
    assert np.all(result.step_inputs[4:] == 0)  # f_3 reads x_0 .. x_3 only
    assert abs(result.step_inputs_gap) < 1e-3


# --------------------------------------------------------------------------- the command


def _cifar10_available() -> bool:
    data = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
    return (data / "cifar10-jpeg.zip").is_file() or (data / "cifar10").is_dir()


@pytest.mark.skipif(not _cifar10_available(), reason="needs the CIFAR-10 test set")
def test_the_intact_row_of_ablate_is_what_eval_measures_on_the_same_images(tmp_path, capsys):
    from crmn_viz import load
    from crmn_viz.frontends.cli import main
    from crmn_viz.training import evaluate_model

    rows_file = tmp_path / "rows.json"
    assert (
        main(
            [
                "ablate",
                "crmn-cifar10",
                "--images",
                "256",
                "--resamples",
                "100",
                "--json",
                str(rows_file),
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    rows = json.loads(rows_file.read_text())
    assert rows[0]["experiment"] == "intact" and rows[0]["images"] == 256
    measured = evaluate_model(load("crmn-cifar10", device="cpu"), "cifar10", "test", max_batches=1)
    assert rows[0]["accuracy"] == measured["accuracy"] and measured["num_images"] == 256
    keys = [row["experiment"] for row in rows]
    assert "memory_off_zero" in keys and "skip_block_8_zero" in keys and "skip_block_0_mean" in keys
    assert "| memory off (h_T = 0) |" in printed
    for row in rows:
        assert row["ci_low"] <= row["accuracy"] <= row["ci_high"]
        # the JPEG archive's test split is sorted by class, as eval reads it: the first 256 are planes
        assert list(row["per_class"]) == ["airplane"]
