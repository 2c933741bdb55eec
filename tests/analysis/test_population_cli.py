"""``crmn-viz population``, ``exemplars`` and ``compare`` on a tiny zoo and a small fake CIFAR-10.

Every expectation is computed here from the images read with ``zipfile`` and PIL and from
``run_with_trace`` (or the models' logits), not from the package's population code.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import crmn_viz
from crmn_viz.frontends.cli import main
from tests.conftest import tiny_model
from tests.population_data import (
    CIFAR10_CLASSES,
    CIFAR10_NORMALIZATION,
    fake_test_images,
    write_fake_cifar10,
    write_tiny_zoo,
    write_training_log,
)

REPO = Path(__file__).resolve().parents[2]
IMAGES = 20  # of the fake archive's 30 test images (3 per class)


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fake_cifar10(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def zoo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture
def zoo(zoo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny zoo as the zoo, a private population cache, and the data variable restored after
    the test (``--data-dir`` sets it for the process)."""
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(zoo_folder))
    monkeypatch.setenv("CRMN_VIZ_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CRMN_VIZ_DATA_DIR", os.environ.get("CRMN_VIZ_DATA_DIR", str(tmp_path / "none")))
    return zoo_folder


def traced(checkpoint: Path, images: torch.Tensor, name: str) -> np.ndarray:
    """``run_with_trace``'s record ``name`` of the images (float64 numpy)."""
    model = crmn_viz.load(checkpoint, device="cpu").eval()
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=[name])
    return trace[name].double().numpy()


def ranked(values: np.ndarray, lowest: bool = False) -> np.ndarray:
    """Indices by descending value (ascending with ``lowest``), ties to the lower index."""
    return np.lexsort((np.arange(len(values)), values if lowest else -values))


def run_cli(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(arguments)
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- exemplars


@pytest.mark.parametrize("lowest", [False, True])
def test_exemplars_json_is_the_argsort_of_the_traced_hidden_unit(zoo, fake_data, tmp_path, capsys, lowest):
    rows_file = tmp_path / "rows.json"
    arguments = ["exemplars", str(zoo / "tiny-crmn.safetensors"), "--quantity", "hidden", "--step", "2"]
    arguments += ["--unit", "3", "--top", "6", "--data-dir", str(fake_data), "--images", str(IMAGES)]
    arguments += ["--json", str(rows_file), "--device", "cpu", "--quiet"] + (["--bottom"] if lowest else [])
    code, out, err = run_cli(arguments, capsys)
    assert code == 0, err
    assert err == ""  # --quiet: no progress

    names, images, _ = fake_test_images(fake_data, IMAGES)
    values = traced(zoo / "tiny-crmn.safetensors", images, "lstm.hidden")[:, 2, 3]
    order = ranked(values, lowest)[:6]
    rows = json.loads(rows_file.read_text())
    assert [row["image"] for row in rows] == [names[i] for i in order]
    np.testing.assert_allclose([row["value"] for row in rows], values[order], rtol=1e-5, atol=1e-6)
    assert set(rows[0]) == {"image", "value"}
    assert rows[0]["image"].startswith("test/") and rows[0]["image"].endswith(".jpg")
    # the printed table: one line per image, best first
    lines = [line for line in out.splitlines() if line.strip().endswith(".jpg")]
    assert [line.split()[-1] for line in lines] == [row["image"] for row in rows]
    assert "counted from 0" in out


def test_exemplars_of_a_block_channel_are_its_mean_over_positions(zoo, fake_data, tmp_path, capsys):
    rows_file = tmp_path / "rows.json"
    arguments = ["exemplars", "tiny-resnet", "--quantity", "block", "--step", "1", "--unit", "2"]
    arguments += ["--top", "4", "--data-dir", str(fake_data), "--images", str(IMAGES)]
    arguments += ["--json", str(rows_file), "--device", "cpu"]
    code, _, err = run_cli(arguments, capsys)
    assert code == 0, err
    assert "[" in err and "images" in err  # progress on stderr without --quiet

    names, images, _ = fake_test_images(fake_data, IMAGES)
    values = traced(zoo / "tiny-resnet.safetensors", images, "blocks.1.out").mean(axis=(2, 3))[:, 2]
    order = ranked(values)[:4]
    rows = json.loads(rows_file.read_text())
    assert [row["image"] for row in rows] == [names[i] for i in order]
    np.testing.assert_allclose([row["value"] for row in rows], values[order], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--quantity": "hiden"}, "--quantity 'hiden'"),
        ({"--step": "3"}, "--step must be in 0..2"),
        ({"--step": "-1"}, "--step must be in 0..2"),
        ({"--unit": "6"}, "--unit must be in 0..5"),
        ({"--top": "0"}, "--top must be >= 1"),
        ({"checkpoint": "no-such-checkpoint"}, "no-such-checkpoint"),
        ({"--data-dir": "EMPTY"}, "Dataset 'cifar10' not found"),
        ({"--dataset": "mnist"}, "Dataset 'mnist' not found"),
    ],
)
def test_exemplars_refuses_bad_input_with_a_message_and_exit_code_2(
    zoo, fake_data, tmp_path, capsys, change, message
):
    options = {"--quantity": "hidden", "--step": "1", "--unit": "0", "--top": "3"}
    options.update({key: value for key, value in change.items() if key != "checkpoint"})
    if options.get("--data-dir") == "EMPTY":
        options["--data-dir"] = str(tmp_path / "empty")
    else:
        options.setdefault("--data-dir", str(fake_data if change.get("--dataset") is None else tmp_path))
    arguments = ["exemplars", change.get("checkpoint", "tiny-crmn"), "--images", "5", "--device", "cpu"]
    for key, value in options.items():
        arguments += [key, value]
    code, out, err = run_cli(arguments, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err and out == ""


# --------------------------------------------------------------------------- compare


def test_compare_json_has_the_accuracies_agreement_and_classes_of_a_hand_count(
    zoo, fake_data, tmp_path, capsys
):
    summary_file = tmp_path / "compare.json"
    arguments = ["compare", "tiny-crmn", str(zoo / "tiny-resnet.safetensors"), "--data-dir", str(fake_data)]
    arguments += ["--images", str(IMAGES), "--json", str(summary_file), "--device", "cpu", "--quiet"]
    code, out, err = run_cli(arguments, capsys)
    assert code == 0, err

    _, images, labels = fake_test_images(fake_data, IMAGES)
    predictions = {}
    for name in ("tiny-crmn", "tiny-resnet"):
        model = crmn_viz.load(zoo / f"{name}.safetensors", device="cpu").eval()
        with torch.no_grad():
            predictions[name] = model(images).argmax(dim=1).numpy()
    right_a, right_b = predictions["tiny-crmn"] == labels, predictions["tiny-resnet"] == labels
    summary = json.loads(summary_file.read_text())
    assert {"accuracy_a", "accuracy_b", "agreement", "per_class"} <= set(summary)
    assert summary["accuracy_a"] == pytest.approx(right_a.mean())
    assert summary["accuracy_b"] == pytest.approx(right_b.mean())
    assert summary["agreement"] == pytest.approx(
        (predictions["tiny-crmn"] == predictions["tiny-resnet"]).mean()
    )
    assert summary["name_a"] == "tiny-crmn" and summary["name_b"] == "tiny-resnet"
    assert summary["count"] == IMAGES
    by_class = {row["class"]: row for row in summary["per_class"]}
    assert list(by_class) == CIFAR10_CLASSES
    for label, name in enumerate(CIFAR10_CLASSES):
        mine = labels == label
        assert by_class[name]["n"] == int(mine.sum())
        if mine.any():
            assert by_class[name]["accuracy_a"] == pytest.approx(right_a[mine].mean())
            assert by_class[name]["accuracy_b"] == pytest.approx(right_b[mine].mean())
    # the Markdown printed: both names and A's accuracy
    assert "| tiny-crmn |" in out and "| tiny-resnet |" in out
    assert f"{100 * right_a.mean():.1f}%" in out


def test_compare_refuses_a_bad_checkpoint_and_missing_data(zoo, fake_data, tmp_path, capsys):
    code, _, err = run_cli(["compare", "tiny-crmn", str(tmp_path / "nothing.safetensors")], capsys)
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    arguments = ["compare", "tiny-crmn", "tiny-resnet", "--data-dir", str(tmp_path / "empty"), "--quiet"]
    code, _, err = run_cli(arguments, capsys)
    assert code == 2 and err.startswith("error: Dataset 'cifar10' not found")
    unwritable = str(tmp_path / "no-such-folder" / "compare.json")
    arguments = ["compare", "tiny-crmn", "tiny-resnet", "--data-dir", str(fake_data), "--images", "5"]
    code, _, err = run_cli([*arguments, "--json", unwritable, "--quiet"], capsys)
    assert code == 2 and err.startswith(f"error: --json {unwritable}: ") and "Traceback" not in err


# --------------------------------------------------------------------------- population


def population_arguments(checkpoint: str, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "population",
        checkpoint,
        "--data-dir",
        str(data),
        "--images",
        str(IMAGES),
        "--out",
        str(out),
        "--bootstrap",
        "50",
        "--formats",
        "json",
        "--device",
        "cpu",
        *extra,
    ]


def test_population_writes_every_figure_with_sidecars_and_population_json(
    zoo, fake_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv(
        "CRMN_VIZ_TRAINING_LOGS", str(write_training_log(tmp_path / "logs", "tiny-crmn").parent)
    )
    out = tmp_path / "out"
    arguments = population_arguments(
        str(zoo / "tiny-crmn.safetensors"), fake_data, out, "--train-images", "30"
    )
    code, printed, err = run_cli(arguments, capsys)
    assert code == 0, err
    assert f"to {out}" in printed

    # a CRMN of depth 8 has 3 blocks: five LSTM quantities at step 3, the hidden state at steps 1-3
    expected = [f"unit_selectivity_{q}_step3" for q in ("input_gate", "forget_gate", "output_gate")]
    expected += ["unit_selectivity_cell_candidate_step3", "unit_selectivity_cell_step3"]
    expected += [f"unit_selectivity_hidden_step{step}" for step in (1, 2, 3)]
    expected += ["linear_probes", "training_curves"]
    weights_sha256 = hashlib.sha256((zoo / "tiny-crmn.safetensors").read_bytes()).hexdigest()
    for figure in expected:
        assert (out / f"tiny-crmn__{figure}.json").is_file(), figure
        assert list(out.glob(f"tiny-crmn__{figure}.data.*")), f"{figure}: the numbers beside it"
        meta = json.loads((out / f"tiny-crmn__{figure}.meta.json").read_text())["provenance"]
        assert meta["checkpoint"] == "tiny-crmn" and meta["weights_sha256"] == weights_sha256
        assert meta["settings"]["figure"] == figure
    meta = json.loads((out / "tiny-crmn__unit_selectivity_hidden_step2.meta.json").read_text())["provenance"]
    assert meta["settings"]["quantity"] == "hidden" and meta["settings"]["step"] == 1
    assert meta["settings"]["images"] == IMAGES and meta["settings"]["dataset"] == "cifar10"
    assert meta["settings"]["bootstrap"] == 50

    summary = json.loads((out / "population.json").read_text())
    assert summary["checkpoint"]["weights_sha256"] == weights_sha256
    assert summary["images"] == IMAGES and summary["skipped"] == []
    assert [row["figure"] for row in summary["selectivity"]] == expected[:-2]
    for row in summary["selectivity"]:
        indices = [unit["selectivity"] for unit in row["most_selective"]]
        assert indices == sorted(indices, reverse=True) and len(row["most_selective"]) == 6  # 6 units
    assert summary["probes"]["train_images"] == 30 and summary["probes"]["test_images"] == IMAGES

    # the exemplars: hidden state at the last step (index 2), the 5 most selective units, ranked as
    # run_with_trace's values rank them
    exemplars = summary["exemplars"]
    assert exemplars["quantity"] == "hidden" and exemplars["step"] == 2 and exemplars["step_number"] == 3
    last = next(row for row in summary["selectivity"] if row["figure"] == "unit_selectivity_hidden_step3")
    assert [unit["unit"] for unit in exemplars["units"]] == [u["unit"] for u in last["most_selective"][:5]]
    names, images, _ = fake_test_images(fake_data, IMAGES)
    hidden = traced(zoo / "tiny-crmn.safetensors", images, "lstm.hidden")[:, 2]
    for unit in exemplars["units"]:
        top, bottom = ranked(hidden[:, unit["unit"]])[:9], ranked(hidden[:, unit["unit"]], True)[:9]
        assert [row["image"] for row in unit["top"]] == [names[i] for i in top]
        assert [row["image"] for row in unit["bottom"]] == [names[i] for i in bottom]
        np.testing.assert_allclose(
            [row["value"] for row in unit["top"]], hidden[top, unit["unit"]], atol=1e-6
        )


def test_population_of_a_resnet_draws_the_last_block_of_each_stage(zoo, fake_data, tmp_path, capsys):
    # depth 14: two blocks per stage, so stages end at blocks 2, 4 and 6 (numbered from 1)
    crmn_viz.save(
        tiny_model("resnet", depth=14, num_outputs=10, input_size=32),
        tmp_path / "resnet14",
        dataset="cifar10",
        class_names=CIFAR10_CLASSES,
        normalization=CIFAR10_NORMALIZATION,
    )
    out = tmp_path / "out"
    arguments = population_arguments(
        str(tmp_path / "resnet14.safetensors"), fake_data, out, "--train-images", "0", "--quiet"
    )
    code, _, err = run_cli(arguments, capsys)
    assert code == 0, err
    drawn = sorted(
        path.name
        for path in out.glob("resnet14__unit_selectivity_*.json")
        if not path.name.endswith(".meta.json")
    )
    assert drawn == [f"resnet14__unit_selectivity_block_step{step}.json" for step in (2, 4, 6)]
    assert "skipped linear probes: --train-images 0" in err
    assert "skipped training curves" in err  # no log for this checkpoint
    summary = json.loads((out / "population.json").read_text())
    assert summary["exemplars"]["quantity"] == "block" and summary["exemplars"]["step"] == 5
    assert summary["selection"] == "the block quantity at the last block of each stage"


def test_population_refuses_a_bad_checkpoint_and_missing_data(zoo, fake_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(
        population_arguments(str(tmp_path / "missing.safetensors"), fake_data, out), capsys
    )
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    code, _, err = run_cli(population_arguments("tiny-crmn", tmp_path / "empty", out), capsys)
    assert code == 2 and err.startswith("error: Dataset 'cifar10' not found") and "Traceback" not in err
    assert not out.exists()


def test_population_of_a_keypoint_model_skips_classes_and_keeps_exemplars(zoo, tmp_path, capsys):
    from tests.data.conftest import find_shared_data_dir

    shared = find_shared_data_dir()
    if shared is None or not (shared / "faces68" / "test.csv").is_file():
        pytest.skip("faces68 not in the shared data")
    out = tmp_path / "out"
    arguments = ["population", "tiny-faces", "--data-dir", str(shared), "--images", "6", "--out", str(out)]
    code, _, err = run_cli([*arguments, "--formats", "json", "--device", "cpu", "--quiet"], capsys)
    assert code == 0, err
    assert "skipped unit x class selectivity: a keypoints model has no classes" in err
    assert "skipped linear probes: a keypoints model has no classes to probe" in err
    summary = json.loads((out / "population.json").read_text())
    assert summary["selectivity"] == [] and summary["probes"] is None
    exemplars = summary["exemplars"]
    assert exemplars["quantity"] == "hidden" and "variance" in exemplars["chosen_by"]
    assert len(exemplars["units"]) == 5
    for unit in exemplars["units"]:
        values = [row["value"] for row in unit["top"]]
        assert values == sorted(values, reverse=True) and len(values) == 6


# --------------------------------------------------------------------------- torchrun


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow  # two processes importing torch: about 30 s on a busy 2-core machine
def test_exemplars_under_torchrun_with_two_processes_equal_one_process(zoo, fake_data, tmp_path, capsys):
    arguments = ["exemplars", "tiny-crmn", "--quantity", "cell", "--step", "1", "--unit", "4", "--top", "7"]
    arguments += ["--data-dir", str(fake_data), "--images", "17", "--device", "cpu", "--quiet"]
    code, _, err = run_cli([*arguments, "--json", str(tmp_path / "one.json")], capsys)
    assert code == 0, err
    environment = {**os.environ, "CRMN_VIZ_CACHE_DIR": str(tmp_path / "cache-two"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    command += ["-m", "crmn_viz.frontends.cli", *arguments, "--json", str(tmp_path / "two.json")]
    finished = subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert json.loads((tmp_path / "two.json").read_text()) == json.loads((tmp_path / "one.json").read_text())
    assert finished.stdout.count("counted from 0") == 1  # only rank 0 prints
