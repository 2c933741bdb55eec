"""Every figure builder's data file holds what the figure shows, read back independently.

Each case builds a figure from a tiny model's trace (or small arrays), writes it with
``export_figure(fig, "f.json", data=figure_data(fig))``, reads ``f.data.npz`` / ``f.data.csv``
back with numpy / csv alone, and compares every array with the figure's own traces, frames,
shapes, tick labels, annotations and ``layout.meta``, element by element. Further tests check
the science in the file: keypoint coordinates, face boxes and NME, gate matrices with their
unit and block labels, the stepwise probability matrix, the attribution map and its target.
"""

from __future__ import annotations

import csv
import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch

import crmn_viz
import crmn_viz.figures as figures
from crmn_viz.analysis.attribution_trust import TrustRow, trust_table_from_rows
from crmn_viz.analysis.block_channels import block_channel_summary
from crmn_viz.analysis.comparison import ModelComparison, summarise_predictions
from crmn_viz.analysis.experiments import DatasetEffect, EffectRow
from crmn_viz.analysis.faithfulness import FaithfulnessCurve
from crmn_viz.analysis.keypoint_evaluation import normalised_mean_error
from crmn_viz.analysis.sanity_checks import SanityCheckResult
from crmn_viz.analysis.selectivity import UnitSelectivity, unit_selectivity
from crmn_viz.analysis.step_attribution import StepAttribution
from crmn_viz.analysis.training_logs import read_training_log
from crmn_viz.figures import (
    export_figure,
    figure_data,
    plot_agreement_matrix,
    plot_attribution_overlay,
    plot_block_channels,
    plot_cell_state,
    plot_context_reach,
    plot_correctness,
    plot_dataset_effect,
    plot_exemplar_grid,
    plot_experiment_heatmaps,
    plot_experiment_readout,
    plot_faithfulness_curves,
    plot_gate_comparison,
    plot_gate_heatmap,
    plot_gate_statistics,
    plot_gate_trajectories,
    plot_keypoints,
    plot_memory_animation,
    plot_patch_grid,
    plot_per_class_accuracy,
    plot_prediction_bar,
    plot_probes,
    plot_sanity_check,
    plot_step_attribution,
    plot_stepwise_accuracy,
    plot_stepwise_keypoints,
    plot_stepwise_probabilities,
    plot_stream_maps,
    plot_stream_norms,
    plot_sweep_gates,
    plot_sweep_maps,
    plot_training_curves,
    plot_trust_summary,
    plot_unit_selectivity,
)
from tests.conftest import random_input, tiny_model

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["plane", "car", "bird", "cat", "deer", "dog", "frog"]
FACE_SIZE = (36, 44)  # height, width of the synthetic face photo


# --------------------------------------------------------------------------- inputs


def face_points(seed: int, shift: float = 0.0) -> np.ndarray:
    """68 points (x, y) with fractional parts inside the synthetic photo."""
    rng = np.random.default_rng(seed)
    height, width = FACE_SIZE
    return np.stack([rng.uniform(4, width - 4, 68), rng.uniform(4, height - 4, 68)], axis=-1) + shift


def step_probabilities(steps: int = 6) -> np.ndarray:
    logits = np.random.default_rng(5).normal(size=(steps, len(CLASSES))) * np.linspace(0.5, 3, steps)[:, None]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def make_inputs() -> SimpleNamespace:
    """Traces of tiny CRMN, ReNet and RiR models (batch of 2) and small arrays for the other builders."""
    torch.manual_seed(0)
    traces = {}
    models = {}
    batches = {}
    for arch in ("crmn", "renet", "rir"):
        models[arch] = tiny_model(arch)
        batches[arch] = random_input(models[arch], batch=2)
        with torch.no_grad():
            _, traces[arch] = models[arch].run_with_trace(batches[arch])
    with torch.no_grad():  # the memory with its forget gates held open (an intervention)
        _, clamped = models["crmn"].run_with_trace(
            batches["crmn"], interventions=[crmn_viz.Clamp("lstm.forget_gate", 1.0)]
        )
    rng = np.random.default_rng(1)
    truth = face_points(0)
    return SimpleNamespace(
        crmn=traces["crmn"],
        crmn_clamped=clamped,
        renet=traces["renet"],
        rir=traces["rir"],
        renet_model=models["renet"],
        rir_model=models["rir"],
        renet_images=batches["renet"],
        photo=rng.integers(0, 256, (*FACE_SIZE, 3), dtype=np.uint8),
        prediction=truth + rng.normal(scale=1.5, size=truth.shape),
        truth=truth,
        box=np.array([3.25, 2.5, 40.75, 33.0]),
        attribution=rng.normal(size=(3, 12, 10)),
        attribution_image=rng.integers(0, 256, (12, 10, 3), dtype=np.uint8),
        stats_means=rng.uniform(size=(3, 6, 4)),
        stats_stds=rng.uniform(0, 0.1, size=(3, 6, 4)),
        probabilities=step_probabilities(),
        per_step=np.stack([truth + 0.75 * step for step in range(6)]),
    )


@pytest.fixture(scope="module")
def inputs() -> SimpleNamespace:
    return make_inputs()


# --------------------------------------------------------------------------- cases


def _selectivity() -> UnitSelectivity:
    rng = np.random.default_rng(11)
    labels = np.repeat(np.arange(4), 12)
    values = rng.normal(size=(48, 6))
    values[:, 2] += 3.0 * (labels == 1)  # one unit prefers class 1
    return unit_selectivity(values, labels, CLASSES[:4], quantity="hidden", step=2, bootstrap=50)


def _probe_result() -> Any:
    from tests.figures.test_probe_figures import _result

    return _result()


def _comparison() -> ModelComparison:
    rng = np.random.default_rng(12)
    labels = np.repeat(np.arange(len(CLASSES)), 6)
    flip_a, flip_b = rng.uniform(size=labels.size) < 0.25, rng.uniform(size=labels.size) < 0.35
    a = np.where(flip_a, rng.integers(0, len(CLASSES), labels.size), labels)
    b = np.where(flip_b, rng.integers(0, len(CLASSES), labels.size), labels)
    return summarise_predictions(
        labels,
        a,
        b,
        rng.uniform(0.4, 1, labels.size),
        rng.uniform(0.4, 1, labels.size),
        CLASSES,
        name_a="crmn",
        name_b="resnet",
        dataset="synthetic",
        stepwise_accuracy_a=np.linspace(0.2, 0.8, 6),
        resamples=200,
    )


@dataclass(frozen=True)
class Case:
    builder: str
    build: Callable[[SimpleNamespace], go.Figure]


def _curve(kind: str, order: str, seed: int) -> FaithfulnessCurve:
    scores = np.sort(np.random.default_rng(seed).uniform(size=9))[:: -1 if kind != "insertion" else 1]
    fractions = np.linspace(0, 1, 9)
    return FaithfulnessCurve(
        kind,
        order,
        fractions,
        scores,
        float(np.trapezoid(scores, fractions)),
        "probability of class 3 (cat)",
        "logit of class 3 (cat)",
        {"score": "probability"},
    )


def _sanity(method: str, seed: int) -> SanityCheckResult:
    rng = np.random.default_rng(seed)
    stages = ["output", "lstm", "stage 3", "stage 2", "stage 1", "stem"]
    return SanityCheckResult(
        "cascading",
        method,
        "logit of class 3 (cat)",
        stages,
        np.linspace(0.9, 0.05, 6),
        np.linspace(0.8, 0.1, 6),
        [rng.uniform(size=(6, 5)) for _ in stages],
        rng.uniform(size=(6, 5)),
        None,
        {},
    )


def _trust_rows() -> list[TrustRow]:
    rng = np.random.default_rng(7)
    return [
        TrustRow(f"img{k}.png", method, "logit of class 3 (cat)", *rng.uniform(size=4), None)
        for k in range(5)
        for method in ("saliency", "gradcam")
    ]


CASES: dict[str, Case] = {
    "exemplar grid": Case(
        "plot_exemplar_grid",
        lambda i: plot_exemplar_grid(
            [i.attribution_image, i.attribution_image[::-1]],
            ["test/cat/0001.jpg", "test/dog/0002.jpg"],
            [0.9, 0.7],
            title="hidden state h, unit 3, step 2: highest",
        ),
    ),
    "linear probes": Case("plot_probes", lambda i: plot_probes(_probe_result(), np.linspace(0.2, 0.9, 6))),
    "unit selectivity": Case("plot_unit_selectivity", lambda i: plot_unit_selectivity(_selectivity())),
    "per-class accuracy": Case("plot_per_class_accuracy", lambda i: plot_per_class_accuracy(_comparison())),
    "agreement matrix": Case("plot_agreement_matrix", lambda i: plot_agreement_matrix(_comparison())),
    "correctness": Case("plot_correctness", lambda i: plot_correctness(_comparison())),
    "stepwise accuracy": Case("plot_stepwise_accuracy", lambda i: plot_stepwise_accuracy(_comparison())),
    "block channels": Case(
        "plot_block_channels", lambda i: plot_block_channels(block_channel_summary(i.rir, i.rir_model, 1))
    ),
    "sweep gates": Case(
        "plot_sweep_gates", lambda i: plot_sweep_gates(i.renet, 1, "reset_gate", image_index=1)
    ),
    "training curves": Case(
        "plot_training_curves",
        lambda i: plot_training_curves(
            {
                name: read_training_log(REPO / "docs" / "training-logs" / f"{name}.jsonl")
                for name in ("crmn-cifar10", "resnet-cifar10", "crmn-faces68")
            }
        ),
    ),
    "faithfulness curves": Case(
        "plot_faithfulness_curves",
        lambda i: plot_faithfulness_curves(
            [_curve("deletion", "most_relevant_first", 1), _curve("insertion", "most_relevant_first", 2)],
            [_curve("deletion", "most_relevant_first", 3), _curve("insertion", "most_relevant_first", 4)],
            "saliency",
        ),
    ),
    "sanity check": Case(
        "plot_sanity_check", lambda i: plot_sanity_check([_sanity("saliency", 1), _sanity("gradcam", 2)])
    ),
    "trust summary": Case(
        "plot_trust_summary",
        lambda i: plot_trust_summary(
            trust_table_from_rows(_trust_rows(), ["saliency", "gradcam"], 32, 200, 0)
        ),
    ),
    "experiment heatmaps": Case(
        "plot_experiment_heatmaps",
        lambda i: plot_experiment_heatmaps(i.crmn, i.crmn_clamped, "cell", image_index=1, units=[0, 2]),
    ),
    "experiment readout": Case(
        "plot_experiment_readout",
        lambda i: plot_experiment_readout(
            np.random.default_rng(2).normal(size=(2, 6, len(CLASSES))),
            np.random.default_rng(3).normal(size=(2, 6, len(CLASSES))),
            CLASSES,
            image_index=1,
        ),
    ),
    "dataset effect": Case(
        "plot_dataset_effect",
        lambda i: plot_dataset_effect(
            DatasetEffect(
                "accuracy",
                (
                    EffectRow("intact", "intact", "accuracy", 0.8125, 0.75, 0.875, 64, {}),
                    EffectRow(
                        "memory_off_zero",
                        "memory off",
                        "accuracy",
                        0.5,
                        0.4375,
                        0.5625,
                        64,
                        {},
                        None,
                        -0.3125,
                        -0.375,
                        -0.25,
                    ),
                ),
                200,
                0,
            )
        ),
    ),
    "step attribution": Case(
        "plot_step_attribution",
        lambda i: plot_step_attribution(
            StepAttribution(
                "logit of class 3 (cat)",
                1.25,
                np.array([0.5, -0.25, 0.125]),
                0.001,
                np.array([0.375, 0.25, -0.125]),
                np.array([0.01, -0.02, 0.0]),
                ("blocks.0.out", "blocks.1.out", "blocks.2.out"),
                16,
            )
        ),
    ),
    "gate heatmap": Case(
        "plot_gate_heatmap",
        lambda i: plot_gate_heatmap(i.crmn, "forget_gate", image_index=1, units=[4, 1, 3]),
    ),
    "cell heatmap": Case("plot_gate_heatmap", lambda i: plot_gate_heatmap(i.crmn, "cell")),
    "gate trajectories": Case(
        "plot_gate_trajectories", lambda i: plot_gate_trajectories(i.crmn, units=[0, 5])
    ),
    "cell state": Case("plot_cell_state", lambda i: plot_cell_state(i.crmn, image_index=1)),
    "cell state of units": Case("plot_cell_state", lambda i: plot_cell_state(i.crmn, units=[2, 3])),
    "memory animation": Case(
        "plot_memory_animation", lambda i: plot_memory_animation(i.crmn, units=[0, 2, 4])
    ),
    "gate comparison": Case(
        "plot_gate_comparison",
        lambda i: plot_gate_comparison(i.crmn, i.crmn, "input_gate", ("cat", "dog"), image_indices=(0, 1)),
    ),
    "gate statistics": Case(
        "plot_gate_statistics",
        lambda i: plot_gate_statistics(i.stats_means, i.stats_stds, CLASSES[:3], "forget_gate"),
    ),
    "sweep maps pca": Case("plot_sweep_maps", lambda i: plot_sweep_maps(i.renet, layer=0, image_index=1)),
    "sweep maps channels": Case(
        "plot_sweep_maps", lambda i: plot_sweep_maps(i.renet, layer=1, mode="channels", channels=[0, 2])
    ),
    "patch grid": Case("plot_patch_grid", lambda i: plot_patch_grid(i.renet_images[0], [2, 2], layer=1)),
    "context reach": Case("plot_context_reach", lambda i: plot_context_reach(i.renet, 0, 2, 1)),
    "context reach over image": Case(
        "plot_context_reach",
        lambda i: plot_context_reach(
            i.renet, 0, 2, 1, patch_sizes=i.renet_model.config.patch_sizes, image=i.renet_images[0]
        ),
    ),
    "stream norms": Case("plot_stream_norms", lambda i: plot_stream_norms(i.rir)),
    "stream norms of one image": Case("plot_stream_norms", lambda i: plot_stream_norms(i.rir, image_index=1)),
    "stream maps": Case("plot_stream_maps", lambda i: plot_stream_maps(i.rir, block=-1, image_index=1)),
    "attribution": Case(
        "plot_attribution_overlay",
        lambda i: plot_attribution_overlay(
            i.attribution_image, i.attribution, title="Saliency", target="cat", target_value=2.5
        ),
    ),
    "attribution magnitude resized": Case(
        "plot_attribution_overlay",
        lambda i: plot_attribution_overlay(i.attribution_image, i.attribution[:, ::2, ::2], signed=False),
    ),
    "keypoints": Case(
        "plot_keypoints",
        lambda i: plot_keypoints(i.photo, i.prediction, ground_truth=i.truth, boxes=i.box, upscale=3),
    ),
    "keypoints without truth": Case("plot_keypoints", lambda i: plot_keypoints(i.photo, [i.prediction])),
    "stepwise probabilities": Case(
        "plot_stepwise_probabilities",
        lambda i: plot_stepwise_probabilities(i.probabilities, CLASSES, top_k=3),
    ),
    "stepwise keypoints grid": Case(
        "plot_stepwise_keypoints",
        lambda i: plot_stepwise_keypoints(i.photo, i.per_step, ground_truth=i.truth, upscale=2),
    ),
    "stepwise keypoints slider": Case(
        "plot_stepwise_keypoints",
        lambda i: plot_stepwise_keypoints(i.photo, i.per_step, steps=[1, 3, 5], layout="slider", upscale=2),
    ),
    "prediction bar": Case(
        "plot_prediction_bar",
        lambda i: plot_prediction_bar(CLASSES, [0.6, 0.2, 0.1, 0.05, 0.04, 0.0099, 0.0001]),
    ),
}


def test_every_public_builder_has_a_round_trip_case() -> None:
    builders = {name for name in figures.__all__ if name.startswith("plot_")}
    covered = {case.builder for case in CASES.values()}
    assert builders - covered == set(), "add a case to CASES for every new plot_* builder"
    assert covered - builders == set(), "a case names a builder that crmn_viz.figures does not export"
    for name in builders:
        assert callable(getattr(figures, name))


def test_every_module_builder_is_exported() -> None:
    """A plot_* builder of any crmn_viz.figures module is in crmn_viz.figures.__all__, so it has a case."""
    for module in pkgutil.iter_modules(figures.__path__):
        public = getattr(importlib.import_module(f"crmn_viz.figures.{module.name}"), "__all__", [])
        missing = {name for name in public if name.startswith("plot_")} - set(figures.__all__)
        assert not missing, f"crmn_viz.figures.{module.name} has builders not exported: {missing}"


# --------------------------------------------------------------------------- reading the file back


def write_and_read(fig: go.Figure, folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any], go.Figure]:
    """Export with the data file, then read it back with numpy / csv only (no crmn_viz)."""
    export_figure(fig, folder / "f.json", data=figure_data(fig))
    meta = json.loads((folder / "f.meta.json").read_text())
    npz, table = folder / "f.data.npz", folder / "f.data.csv"
    assert npz.exists() != table.exists(), "exactly one data file"
    if npz.exists():
        assert meta["data_file"] == "f.data.npz"
        with np.load(npz, allow_pickle=False) as stored:  # no pickled objects in the file
            arrays = {key: stored[key] for key in stored.files}
    else:
        assert meta["data_file"] == "f.data.csv"
        with table.open(newline="") as stream:
            rows = list(csv.reader(stream))
        arrays = {name: np.array(column) for name, *column in zip(*rows, strict=True)}  # text; see same()
    return arrays, meta, pio.read_json(folder / "f.json")


def same(stored: np.ndarray, expected: Any, key: str) -> None:
    """Element by element; text columns of a CSV are converted to the expected kind first."""
    expected = np.asarray(expected)
    if expected.dtype.kind in "US":
        assert stored.dtype.kind == "U", key
        assert stored.shape == expected.shape, key
        assert stored.tolist() == expected.astype(str).tolist(), key
        return
    np.testing.assert_array_equal(
        np.asarray(stored, dtype=float), expected.astype(float), err_msg=key, strict=True
    )


# --------------------------------------------------------------------------- what the figure shows


def _plain(value: Any) -> np.ndarray | None:
    """A figure property as an array (None -> NaN), or None when it shows nothing."""
    if value is None:
        return None
    array = np.asarray(value)
    if array.dtype == object:
        flat = array.reshape(-1).tolist()
        if all(item is None for item in flat):
            return None
        array = np.array([np.nan if item is None else item for item in flat]).reshape(array.shape)
    if array.size == 0 or (array.ndim == 0 and array.dtype.kind == "U" and not str(array)):
        return None
    return array


def _trace_keys(traces: tuple[Any, ...]) -> list[str]:
    """The documented key of each trace: its name ('/' -> '-'), 'trace <i>', or '<name> (<i>)' if shared."""
    names = [str(trace.name).replace("/", "-") if trace.name else "" for trace in traces]
    return [
        f"trace {i}" if not name else f"{name} ({i})" if names.count(name) > 1 else name
        for i, name in enumerate(names)
    ]


def shown_numbers(fig: go.Figure) -> dict[str, Any]:
    """What the figure itself holds, read straight from its traces, frames and layout."""
    expected: dict[str, Any] = {}

    def traces(found: tuple[Any, ...], prefix: str) -> None:
        for key, trace in zip(_trace_keys(found), found):
            for prop in ("x", "y", "z", "customdata", "text", "x0", "dx", "y0", "dy"):
                value = _plain(trace[prop]) if prop in trace else None
                if value is not None:
                    expected[f"{prefix}{key}.{prop}"] = value
            for bars in ("error_x", "error_y"):
                if bars in trace and trace[bars].visible is not False and trace[bars].array is not None:
                    expected[f"{prefix}{key}.{bars}"] = np.asarray(trace[bars].array)
                    if trace[bars].symmetric is False:  # the lower half of asymmetric bars
                        expected[f"{prefix}{key}.{bars}.minus"] = np.asarray(trace[bars].arrayminus)

    traces(tuple(fig.data), "")
    for frame in fig.frames:
        traces(tuple(frame.data), f"frame {frame.name}: ")
    layout = fig.layout
    if layout.title.text:
        expected["layout.title"] = layout.title.text
    for name in fig.to_dict()["layout"]:
        # ticks labelled with text; plain numeric ticks add nothing
        if re.fullmatch(r"[xy]axis\d*", name) and layout[name].ticktext is not None:
            for tick in ("tickvals", "ticktext"):
                expected[f"layout.{name}.{tick}"] = np.asarray(layout[name][tick])
    if layout.shapes:
        expected["layout.shapes.coordinates"] = np.array(
            [
                [np.nan if s[c] is None else float(s[c]) for c in ("x0", "y0", "x1", "y1")]
                for s in layout.shapes
            ]
        )
        for prop, default in (("type", ""), ("name", ""), ("xref", "x"), ("yref", "y")):
            expected[f"layout.shapes.{prop}"] = np.array([s[prop] or default for s in layout.shapes])
        if any(s.path for s in layout.shapes):
            expected["layout.shapes.path"] = np.array([s.path or "" for s in layout.shapes])
    bar_labels = {  # a bar's own label written beside it is already the trace's text
        (x, y, text)
        for trace in fig.data
        if isinstance(trace, go.Bar) and trace.text is not None
        for x, y, text in zip(trace.x, trace.y, trace.text)
    }
    notes = [note for note in layout.annotations if (note.x, note.y, note.text) not in bar_labels]
    if notes:
        expected["layout.annotations.text"] = np.array([note.text or "" for note in notes])
        for axis in ("x", "y"):
            values = [note[axis] for note in notes]
            numeric = all(isinstance(v, (int, float)) for v in values)
            expected[f"layout.annotations.{axis}"] = np.array(values if numeric else [str(v) for v in values])
            expected[f"layout.annotations.{axis}ref"] = np.array(
                [note[f"{axis}ref"] or axis for note in notes]
            )

    def meta(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for sub, item in value.items():
                meta(item, f"{key}.{sub}")
        elif value is not None:
            expected[key] = _plain(value)

    meta(layout.meta, "layout.meta")
    return expected


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_data_file_holds_what_the_figure_shows(case: str, inputs: SimpleNamespace, tmp_path: Path) -> None:
    fig = CASES[case].build(inputs)
    stored, meta, reread = write_and_read(fig, tmp_path)
    expected = shown_numbers(fig)
    assert set(stored) == set(expected), "the data file holds exactly what the figure shows"
    for key, value in expected.items():
        same(stored[key], value, key)
    described = meta["data"].get("arrays") or dict.fromkeys(meta["data"]["columns"])
    assert set(described) == set(stored)
    # the figure file written beside it gives the same numbers
    again = figure_data(reread)
    assert set(again) == set(stored)
    for key, value in again.items():
        same(stored[key], value, key)


# --------------------------------------------------------------------------- the science in the file


def test_keypoint_file_holds_coordinates_box_and_nme(inputs: SimpleNamespace, tmp_path: Path) -> None:
    fig = CASES["keypoints"].build(inputs)
    stored, _, _ = write_and_read(fig, tmp_path)
    np.testing.assert_array_equal(stored["layout.meta.prediction"], inputs.prediction[None])  # exact pixels
    np.testing.assert_array_equal(stored["layout.meta.ground_truth"], inputs.truth[None])
    expected_nme = normalised_mean_error(inputs.prediction, inputs.truth)  # the analysis' own definition
    assert stored["layout.meta.nme"].tolist() == pytest.approx([expected_nme], rel=1e-12)
    assert stored["layout.meta.nme_ground_truth_face"].tolist() == [0]
    np.testing.assert_array_equal(stored["layout.meta.face_boxes"], inputs.box[None])
    rows = stored["layout.shapes.name"] == "face box"
    np.testing.assert_array_equal(stored["layout.shapes.coordinates"][rows], inputs.box[None])  # drawn box
    low, high = inputs.prediction.min(axis=0), inputs.prediction.max(axis=0)
    np.testing.assert_array_equal(stored["layout.meta.prediction_boxes"], [[*low, *high]])
    np.testing.assert_array_equal(stored["keypoints.z"], np.asarray(fig.data[0].z))  # the drawing
    assert stored["layout.meta.upscale"] == 3 and stored["keypoints.dx"] == pytest.approx(1 / 3)


def test_keypoint_nme_is_scored_against_the_matching_face(inputs: SimpleNamespace, tmp_path: Path) -> None:
    other = face_points(7)
    fig = plot_keypoints(inputs.photo, [other, inputs.prediction], ground_truth=[inputs.truth], upscale=1)
    stored, _, _ = write_and_read(fig, tmp_path)
    np.testing.assert_array_equal(stored["layout.meta.prediction"], np.stack([other, inputs.prediction]))
    assert stored["layout.meta.nme"].tolist() == pytest.approx(
        [normalised_mean_error(other, inputs.truth), normalised_mean_error(inputs.prediction, inputs.truth)],
        rel=1e-12,
    )
    assert "layout.meta.face_boxes" not in stored and "layout.shapes.coordinates" not in stored


def test_stepwise_keypoint_file_holds_each_steps_points_and_nme(
    inputs: SimpleNamespace, tmp_path: Path
) -> None:
    fig = CASES["stepwise keypoints grid"].build(inputs)
    stored, _, _ = write_and_read(fig, tmp_path)
    steps = stored["layout.meta.steps"].tolist()
    assert steps == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(stored["layout.meta.prediction"], inputs.per_step[steps])
    np.testing.assert_array_equal(stored["layout.meta.ground_truth"], inputs.truth)
    expected = [normalised_mean_error(inputs.per_step[step], inputs.truth) for step in steps]
    assert stored["layout.meta.nme"].tolist() == pytest.approx(expected, rel=1e-12)
    slider = CASES["stepwise keypoints slider"].build(inputs)
    stored, _, _ = write_and_read(slider, tmp_path / "slider")
    np.testing.assert_array_equal(stored["layout.meta.prediction"], inputs.per_step[[1, 3, 5]])
    assert {f"frame block {k}: block {k}.z" for k in (1, 3, 5)} <= set(stored)  # every frame's drawing


@pytest.mark.parametrize(("quantity", "image", "units"), [("forget_gate", 1, [4, 1, 3]), ("cell", 0, None)])
def test_gate_file_is_the_recorded_matrix_with_unit_and_block_labels(
    inputs: SimpleNamespace, tmp_path: Path, quantity: str, image: int, units: list[int] | None
) -> None:
    fig = plot_gate_heatmap(inputs.crmn, quantity, image_index=image, units=units)
    stored, _, _ = write_and_read(fig, tmp_path)
    name = fig.data[0].name
    recorded = inputs.crmn[f"lstm.{quantity}"][image].double().numpy()  # [T, H]
    shown_units = list(range(recorded.shape[1])) if units is None else units
    np.testing.assert_array_equal(stored[f"{name}.z"], recorded[:, shown_units].T)
    assert stored[f"{name}.y"].tolist() == [str(unit) for unit in shown_units]  # row labels
    assert stored["layout.meta.units"].tolist() == shown_units
    steps = recorded.shape[0]
    np.testing.assert_array_equal(stored[f"{name}.x"], np.arange(steps))
    assert stored["layout.meta.block_labels"].tolist() == [
        f"block {k}" for k in range(steps)
    ]  # column labels
    assert stored["layout.xaxis.ticktext"].tolist() == [f"block {k}" for k in stored["layout.xaxis.tickvals"]]
    assert stored["layout.meta.stages"].tolist() == [0, 0, 1, 1, 2, 2]
    assert stored["layout.meta.quantity"] == quantity and stored["layout.meta.image_index"] == image


def test_gate_comparison_file_holds_both_recorded_matrices(inputs: SimpleNamespace, tmp_path: Path) -> None:
    stored, _, _ = write_and_read(CASES["gate comparison"].build(inputs), tmp_path)
    for label, image in (("cat", 0), ("dog", 1)):
        np.testing.assert_array_equal(
            stored[f"{label}.z"], inputs.crmn["lstm.input_gate"][image].double().numpy().T
        )
    assert stored["layout.meta.labels"].tolist() == ["cat", "dog"]
    assert stored["layout.meta.image_indices"].tolist() == [0, 1]


def test_stepwise_probability_file_holds_the_whole_matrix(inputs: SimpleNamespace, tmp_path: Path) -> None:
    fig = CASES["stepwise probabilities"].build(inputs)
    stored, _, _ = write_and_read(fig, tmp_path)
    matrix = stored["layout.meta.probabilities"]
    np.testing.assert_array_equal(matrix, inputs.probabilities)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-12)  # one distribution per step
    names = stored["layout.meta.class_names"].tolist()
    assert names == CLASSES
    shown = [trace.name for trace in fig.data]
    assert [names[k] for k in stored["layout.meta.shown_classes"]] == shown
    for name in shown:  # every line is a column of the matrix
        np.testing.assert_array_equal(stored[f"{name}.y"], matrix[:, names.index(name)])


def test_attribution_file_holds_the_map_and_its_target(inputs: SimpleNamespace, tmp_path: Path) -> None:
    stored, _, _ = write_and_read(CASES["attribution"].build(inputs), tmp_path)
    np.testing.assert_array_equal(
        stored["attribution.z"], inputs.attribution.sum(axis=0)
    )  # signed: channel sum
    assert stored["layout.meta.target"] == "cat" and stored["layout.meta.target_value"] == 2.5
    assert stored["layout.title"] == "Saliency"
    assert bool(stored["layout.meta.signed"]) and stored["layout.meta.attribution_shape"].tolist() == [12, 10]
    single = plot_attribution_overlay(inputs.attribution_image, inputs.attribution[0], target=3)
    stored, _, _ = write_and_read(single, tmp_path / "single")
    np.testing.assert_array_equal(stored["attribution.z"], inputs.attribution[0])  # the map passed in
    assert stored["layout.meta.target"] == "3"
    grey = stored["image.z"]
    assert grey.shape == (12, 10, 3) and grey.dtype == np.uint8


def test_image_sources_are_decoded_to_pixels() -> None:
    pixels = np.random.default_rng(2).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    data = figure_data(go.Figure(go.Image(source=uri, name="photo")))
    np.testing.assert_array_equal(data["photo.z"], pixels)


def test_prediction_bar_file_is_a_table_of_bars_and_their_labels(
    inputs: SimpleNamespace, tmp_path: Path
) -> None:
    fig = CASES["prediction bar"].build(inputs)
    assert len(fig.layout.annotations) == 6  # labels beside the narrow bars: the bars' own text
    stored, meta, _ = write_and_read(fig, tmp_path)
    assert meta["data"]["kind"] == "csv"
    assert meta["data"]["columns"] == ["probability.x", "probability.y", "probability.text"]
    np.testing.assert_array_equal(
        stored["probability.x"].astype(float), [0.6, 0.2, 0.1, 0.05, 0.04, 0.0099, 0.0001]
    )
    assert stored["probability.y"].tolist() == CLASSES
    assert stored["probability.text"].tolist() == ["60.0%", "20.0%", "10.0%", "5.0%", "4.0%", "1.0%", "<0.1%"]
