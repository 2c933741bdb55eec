"""Training logs: the shipped ``docs/training-logs`` read as arrays, drawn as the CRMN paper's
Figure 3, and summarised; malformed logs refused with the file and line."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from crmn_viz.analysis.training_logs import (
    TRAINING_LOGS_ENV,
    TrainingLogError,
    find_training_log,
    read_training_log,
    warm_restart_epochs,
)
from crmn_viz.figures.training_curves import PANEL_FIELDS, CurveStyle, plot_training_curves
from crmn_viz.views.training_curves import pair_styles, training_curves_view, training_summary_rows

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(path.stem for path in (REPO / "docs" / "training-logs").glob("*.jsonl"))


@pytest.fixture(autouse=True)
def _no_log_folder_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRAINING_LOGS_ENV, raising=False)


def card(name: str) -> dict:
    return json.loads((REPO / "checkpoints" / f"{name}.json").read_text())


def raw_records(name: str) -> list[dict]:
    return [
        json.loads(line)
        for line in (REPO / "docs" / "training-logs" / f"{name}.jsonl").read_text().splitlines()
    ]


def write_log(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_every_checkpoint_of_the_zoo_ships_a_log() -> None:
    zoo = sorted(path.stem for path in (REPO / "checkpoints").glob("*.json"))
    assert zoo == SHIPPED
    for name in zoo:
        assert find_training_log(name) == REPO / "docs" / "training-logs" / f"{name}.jsonl"


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_log_covers_its_cards_epochs_and_ends_at_its_cards_test_metric(name: str) -> None:
    log = read_training_log(find_training_log(name))
    model_card = card(name)
    assert log.name == name and log.epochs == model_card["training"]["epochs"]
    np.testing.assert_array_equal(log.epoch, np.arange(1, log.epochs + 1))
    metric = "test_nme_crop" if model_card["task"] == "keypoints" else "test_accuracy"
    # the card is measured on the shipped float16 weights, the log on the float32 ones: a few
    # test images of 10,000 may change (as tests/test_zoo.py allows)
    assert log.last(metric) == pytest.approx(model_card["metrics"][metric], abs=5e-4)
    assert log.last("test_num_images") == model_card["metrics"]["test_num_images"]


def test_fields_are_nan_on_the_epochs_whose_records_lack_them() -> None:
    records = raw_records("crmn-cifar10-swa")
    log = read_training_log(find_training_log("crmn-cifar10-swa"))
    measured = [record["epoch"] for record in records if "test_accuracy" in record]
    epochs, values = log.measured("test_accuracy")
    np.testing.assert_array_equal(epochs, measured)
    np.testing.assert_array_equal(values, [r["test_accuracy"] for r in records if "test_accuracy" in r])
    assert np.isnan(log.test_accuracy).sum() == len(records) - len(measured)
    np.testing.assert_array_equal(log.lr, [record["lr"] for record in records])
    np.testing.assert_array_equal(log.extra["swa_epochs_averaged"], np.arange(1, 36))
    assert "iterate_test_accuracy" in log.fields
    faces = read_training_log(find_training_log("crmn-faces68"))
    assert np.isnan(faces.train_accuracy).all() and "train_accuracy" not in faces.fields
    assert faces.last("test_nme_crop") == raw_records("crmn-faces68")[-1]["test_nme_crop"]
    assert log.sha256 == hashlib.sha256(find_training_log("crmn-cifar10-swa").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ('{"epoch": 3, "train_loss": 0.5', "not valid JSON"),
        ('[{"epoch": 3}]', "must be a JSON object"),
        ('{"train_loss": 0.5}', "'epoch' must be a positive integer"),
        ('{"epoch": 0, "train_loss": 0.5}', "'epoch' must be a positive integer"),
        ('{"epoch": true}', "'epoch' must be a positive integer"),
        (
            '{"epoch": 3, "train_loss": "__import__(\'os\').system(\'true\')"}',
            "'train_loss' must be a number",
        ),
        ('{"epoch": 3, "lr": [0.1]}', "'lr' must be a number"),
        ('{"epoch": 3, "lr": 0.1, "lr": 0.2}', "repeated key"),
    ],
)
def test_a_malformed_line_is_refused_naming_the_file_and_the_line(
    tmp_path: Path, bad: str, reason: str
) -> None:
    path = write_log(
        tmp_path, "broken", ['{"epoch": 1, "train_loss": 1.0}', "", '{"epoch": 2, "train_loss": 0.9}', bad]
    )
    with pytest.raises(TrainingLogError, match=rf"broken\.jsonl, line 4: .*{reason}"):
        read_training_log(path)


def test_empty_missing_and_oversized_logs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(TrainingLogError, match="no epoch records"):
        read_training_log(write_log(tmp_path, "empty", ["", "  "]))
    with pytest.raises(TrainingLogError, match="cannot be read"):
        read_training_log(tmp_path / "absent.jsonl")
    monkeypatch.setattr("crmn_viz.analysis.training_logs.MAX_TRAINING_LOG_BYTES", 10)
    with pytest.raises(TrainingLogError, match="larger than 10 bytes"):
        read_training_log(write_log(tmp_path, "big", ['{"epoch": 1, "train_loss": 1.0}']))


def test_a_resumed_run_keeps_the_records_it_went_on_with(tmp_path: Path) -> None:
    lines = [
        json.dumps({"epoch": epoch, "train_loss": loss}) for epoch, loss in [(1, 4.0), (2, 3.0), (3, 2.0)]
    ]
    lines += [json.dumps({"epoch": epoch, "train_loss": loss}) for epoch, loss in [(3, 2.5), (4, 1.5)]]
    log = read_training_log(write_log(tmp_path, "resumed", lines))
    np.testing.assert_array_equal(log.epoch, [1, 2, 3, 4])
    np.testing.assert_array_equal(log.train_loss, [4.0, 3.0, 2.5, 1.5])


def test_the_environment_folder_is_searched_before_the_docs_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkpoints = tmp_path / "repo" / "checkpoints"
    checkpoints.mkdir(parents=True)
    beside = write_log(tmp_path / "repo" / "docs" / "training-logs", "model", ['{"epoch": 1}'])
    assert find_training_log("model", checkpoints) == beside
    assert find_training_log("other", checkpoints) is None
    first = write_log(tmp_path / "first", "model", ['{"epoch": 1}'])
    monkeypatch.setenv(TRAINING_LOGS_ENV, f"{tmp_path / 'nowhere'}{os.pathsep}{first.parent}")
    assert find_training_log("model", checkpoints) == first
    for unsafe in ("../model", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="plain file stem"):
            find_training_log(unsafe, checkpoints)


def test_warm_restarts_are_the_cards_restarts() -> None:
    restarts = card("crmn-cifar10")["training"]["recipe"]["restarts"]
    log = read_training_log(find_training_log("crmn-cifar10"))
    # a restart "at epoch 40" resumes after 40 epochs: epoch 41 is the first of the new cycle
    np.testing.assert_array_equal(warm_restart_epochs(log), [r["at_epoch"] + 1 for r in restarts])
    for single_cycle in ("crmn32-cifar10", "crmn-cifar10-swa", "renet-cifar10"):
        assert warm_restart_epochs(read_training_log(find_training_log(single_cycle))).size == 0


def test_the_figure_draws_every_log_array_on_its_panel() -> None:
    names = ["crmn-cifar10", "resnet-cifar10"]
    logs = {name: read_training_log(find_training_log(name)) for name in names}
    styles = {"crmn-cifar10": CurveStyle("#0072B2", "solid"), "resnet-cifar10": CurveStyle("#0072B2", "dash")}
    fig = plot_training_curves(logs, styles)
    axes = {"train_loss": "y", "train_accuracy": "y2", "test": "y3", "lr": "y4"}
    assert list(axes) == list(PANEL_FIELDS)
    for name in names:
        records = raw_records(name)
        traces = {trace.yaxis: trace for trace in fig.data if trace.name == name}
        assert set(traces) == set(axes.values())
        np.testing.assert_array_equal(traces["y"].x, [r["epoch"] for r in records])
        np.testing.assert_array_equal(traces["y"].y, [r["train_loss"] for r in records])
        np.testing.assert_array_equal(traces["y2"].y, [r["train_accuracy"] for r in records])
        np.testing.assert_array_equal(traces["y4"].y, [r["lr"] for r in records])
        np.testing.assert_array_equal(traces["y3"].x, [r["epoch"] for r in records if "test_accuracy" in r])
        np.testing.assert_array_equal(
            traces["y3"].y, [r["test_accuracy"] for r in records if "test_accuracy" in r]
        )
        assert "markers" in traces["y3"].mode
        assert {trace.line.dash for trace in traces.values()} == {styles[name].dash}
    assert fig.layout.yaxis4.type == "log"
    meta = fig.layout.meta
    assert meta["checkpoints"] == names
    assert [meta["logs"][name]["sha256"] for name in names] == [
        hashlib.sha256(find_training_log(name).read_bytes()).hexdigest() for name in names
    ]
    assert meta["warm_restarts"] == {name: [41, 91] for name in names}
    restart_lines = [shape for shape in fig.layout.shapes if shape.type == "line" and shape.x0 == 40.5]
    assert len(restart_lines) == 4  # one in every panel
    keypoints = plot_training_curves({"crmn-faces68": read_training_log(find_training_log("crmn-faces68"))})
    assert keypoints.layout.meta["test_metric"] == "test_nme_crop"
    assert any("no training accuracy" in annotation.text for annotation in keypoints.layout.annotations)


def test_a_crmn_and_its_resnet_share_a_colour_solid_with_memory_and_dashed_without() -> None:
    styles = pair_styles(
        ["crmn-cifar10", "resnet-cifar10", "crmn32-cifar10", "resnet32-cifar10", "renet-cifar10"]
    )
    assert styles["crmn-cifar10"].colour == styles["resnet-cifar10"].colour
    assert styles["crmn32-cifar10"].colour == styles["resnet32-cifar10"].colour
    assert len({styles[name].colour for name in ("crmn-cifar10", "crmn32-cifar10", "renet-cifar10")}) == 3
    assert styles["crmn-cifar10"].dash == styles["crmn32-cifar10"].dash == "solid"
    assert styles["resnet-cifar10"].dash == styles["resnet32-cifar10"].dash == "dash"


def test_the_view_and_the_summary_read_the_shipped_logs() -> None:
    names = ["crmn-cifar10", "resnet-cifar10", "not-a-checkpoint"]
    shown = training_curves_view(names)
    settings = dict(shown.settings)
    assert settings["checkpoints"] == names[:2] and settings["without_log"] == ["not-a-checkpoint"]
    assert (
        settings["logs"]["crmn-cifar10"]["sha256"]
        == read_training_log(find_training_log("crmn-cifar10")).sha256
    )
    assert "not-a-checkpoint" in shown.caption
    crmn, resnet = training_summary_rows(names)
    records = raw_records("crmn-cifar10")
    assert crmn["checkpoint"] == "crmn-cifar10" and crmn["epochs"] == len(records)
    assert crmn["hours"] == pytest.approx(sum(r["epoch_time_s"] for r in records) / 3600, abs=1e-3)
    assert crmn["final_test_accuracy"] == records[-1]["test_accuracy"]
    assert crmn["final_train_accuracy"] == records[-1]["train_accuracy"]
    assert crmn["final_test_nme_crop"] is None and resnet["checkpoint"] == "resnet-cifar10"
    with pytest.raises(FileNotFoundError, match="no training log"):
        training_curves_view(["not-a-checkpoint"])
