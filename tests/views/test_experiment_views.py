"""The experiment views: intact against intervened from one run, the same for every front end."""

from __future__ import annotations

import numpy as np
import torch

from crmn_viz import Clamp
from crmn_viz.analysis.experiments import DatasetEffect, EffectRow, ExperimentSpec
from crmn_viz.analysis.inputs import prepare_batch
from crmn_viz.figures import figure_data
from crmn_viz.figures.experiments import plot_dataset_effect
from crmn_viz.views import experiments
from crmn_viz.views.compute import DirectCompute
from crmn_viz.views.report import report_figures
from tests.conftest import tiny_model
from tests.views.test_views import picture

RUN = DirectCompute()


def _crmn():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return tiny_model("crmn", num_outputs=10, input_size=32).eval()


def test_the_heatmaps_show_intact_intervened_and_their_difference():
    model, images = _crmn(), [picture(0), picture(1)]
    spec = ExperimentSpec("skip_block", 2)
    shown = experiments.experiment_heatmaps(model, images, 1, spec, None, "cell", None, RUN)
    intact = RUN.trace(model, [images[1]])["lstm.cell"][0].numpy()
    with torch.no_grad():
        x = prepare_batch(model, [images[1].image()])
        _, edited = model.run_with_trace(x, interventions=[Clamp("lstm.input", 0.0, steps=[2])])
    left, right, difference = (np.asarray(trace.z) for trace in shown.figure.data)
    np.testing.assert_allclose(left, intact.T, rtol=1e-6)
    np.testing.assert_allclose(right, edited["lstm.cell"][0].numpy().T, rtol=1e-6)
    np.testing.assert_allclose(difference, right - left, atol=1e-7)
    assert np.all(difference[:, :2] == 0) and np.any(difference[:, 2:] != 0)
    assert shown.settings["experiment"] == "skip_block" and shown.settings["step"] == 2
    assert shown.images == (images[1],)


def test_the_readout_says_what_changed_and_draws_both_runs():
    model, images = _crmn(), [picture(0), picture(1)]
    text, shown = experiments.experiment_readout(model, images, 0, ExperimentSpec("swap", 1), images[1], RUN)
    assert "intact" in text and "intervened" in text
    assert shown is not None and shown.images == (images[0], images[1])
    names = [trace.name for trace in shown.figure.data]
    assert any(name.endswith("(intact)") for name in names) and any(
        name.endswith("(intervened)") for name in names
    )
    data = figure_data(shown.figure)
    assert data, "the numbers behind the figure are exported"


def test_the_effect_table_prints_every_row_with_its_interval():
    rows = (
        EffectRow("intact", "intact", "accuracy", 0.9, 0.85, 0.95, 100, {"cat": (0.8, 0.6, 1.0, 10)}),
        EffectRow(
            "memory_off_zero",
            "memory off (h_T = 0)",
            "accuracy",
            0.5,
            0.4,
            0.6,
            100,
            {},
            None,
            -0.4,
            -0.5,
            -0.3,
        ),
    )
    table = experiments.effect_markdown(DatasetEffect("accuracy", rows, 1000, 0), per_class=True)
    lines = table.splitlines()
    assert lines[2] == "| intact | 90.00% | 85.00-95.00 |  | 100 |"
    assert lines[3] == "| memory off (h_T = 0) | 50.00% | 40.00-60.00 | -40.00 (-50.00 to -30.00) | 100 |"
    assert lines[-2:] == ["| intact | 80.0 |", "| memory off (h_T = 0) | - |"]
    chart = plot_dataset_effect(DatasetEffect("accuracy", rows, 1000, 0))
    np.testing.assert_allclose(chart.data[0].x, [90.0, 50.0])


def test_the_report_draws_the_experiments_each_model_allows():
    model = _crmn()
    names = {item.name for item in report_figures(model, picture(5), ig_steps=4)}
    middle = model.num_steps // 2
    assert {
        "experiment_memory_off_readout",
        f"experiment_skip_block_{middle}_cell",
        "experiment_step_attribution",
    } <= names
    resnet = tiny_model("resnet", num_outputs=10, input_size=32).eval()
    names = {item.name for item in report_figures(resnet, picture(5), ig_steps=4)}
    assert "experiment_step_attribution" in names
    assert not any(name.startswith(("experiment_memory", "experiment_skip")) for name in names)
