"""``crmn-viz faces`` and ``crmn-viz face-detectors`` on real faces68 photos (issue #22)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import crmn_viz
from crmn_viz.analysis.face_detectors import mtcnn_available
from crmn_viz.analysis.keypoint_evaluation import evaluate_keypoints_on_photos
from crmn_viz.frontends.cli import main
from tests.analysis.conftest import find_faces68_dir, tiny_keypoint_crmn

FACES68 = find_faces68_dir()
needs_faces = pytest.mark.skipif(FACES68 is None, reason="faces68 data not found")


@needs_faces
def test_faces_cli_prints_the_group_table_and_writes_what_the_library_measures(tmp_path, capsys):
    path = tmp_path / "tiny-faces.safetensors"
    crmn_viz.save(tiny_keypoint_crmn(), path)
    out = tmp_path / "faces.json"
    code = main(
        [
            "faces",
            str(path),
            "--data-dir",
            str(FACES68.parent),
            "--photos",
            "2",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| jaw | brows | nose | eyes | mouth |" in printed and "box given" in printed
    written = json.loads(out.read_text())[str(path)]
    again = evaluate_keypoints_on_photos(
        crmn_viz.load(path), FACES68.parent, "test", max_photos=2, progress=False
    )
    assert written["box given"]["nme"] == pytest.approx(again["nme"])
    assert written["detector"]["num_photos"] == 2
    assert f"{100 * again['nme']:.2f}%" in printed


@needs_faces
def test_faces_cli_refuses_a_classifier_and_a_bad_count(tmp_path, capsys):
    path = tmp_path / "tiny-classifier.safetensors"
    crmn_viz.save(crmn_viz.create_model("resnet", depth=8, width=4), path)
    assert main(["faces", str(path), "--data-dir", str(FACES68.parent), "--quiet"]) == 2
    assert "classifier" in capsys.readouterr().err
    assert main(["faces", str(path), "--photos", "-1"]) == 2


def test_face_detectors_cli_says_why_without_data(tmp_path, capsys):
    assert main(["face-detectors", "--data-dir", str(tmp_path), "--quiet"]) == 2
    assert "error" in capsys.readouterr().err


@needs_faces
def test_face_detectors_cli_rows(tmp_path, capsys):
    out = tmp_path / "detectors.json"
    names = ["haar"] + (["mtcnn"] if mtcnn_available() else [])
    code = main(
        [
            "face-detectors",
            "--data-dir",
            str(FACES68.parent),
            "--photos",
            "3",
            "--detectors",
            *names,
            "--json",
            str(out),
        ]
    )
    assert code == 0
    rows = json.loads(out.read_text())
    assert [row["detector"] for row in rows] == names
    for row in rows:
        assert row["photos"] == 3 and 0 <= row["missed"] <= 3
        assert row["miss_rate"] == pytest.approx(row["missed"] / 3)
        assert np.isnan(row["iou_median"]) or 0 < row["iou_median"] <= 1
    assert "| haar | 3 |" in capsys.readouterr().out
    assert main(["face-detectors", "--data-dir", str(FACES68.parent), "--detectors", "nonesuch"]) == 2


def test_zoo_keypoint_rows_are_the_cards_numbers():
    from crmn_viz import list_checkpoints
    from crmn_viz.views.keypoint_report import keypoint_zoo_rows

    rows = keypoint_zoo_rows()
    cards = {entry["name"]: entry["metrics"] for entry in list_checkpoints() if entry["task"] == "keypoints"}
    assert {row["model"] for row in rows} == set(cards) >= {"crmn-faces68", "resnet-faces68"}
    for row in rows:
        key = "test_nme_box_given" if row["face box"] == "given" else "test_nme_detector"
        metrics = cards[row["model"]]
        assert row["NME (%)"] == round(100 * metrics[key], 2)
        assert row["mouth"] == round(100 * metrics[f"{key}_mouth"], 2)
        # the per-point NME averages the groups' NMEs weighted by their point counts
        weighted = (
            17 * row["jaw"] + 10 * row["brows"] + 9 * row["nose"] + 12 * row["eyes"] + 20 * row["mouth"]
        ) / 68
        assert weighted == pytest.approx(row["NME (%)"], abs=0.02)
