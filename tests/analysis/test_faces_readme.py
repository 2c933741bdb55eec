"""The README's face-keypoint table (section "Face keypoints from a photo") is the cards' numbers,
and (slow) re-measuring it with ``crmn-viz faces`` gives the same table."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crmn_viz import load
from crmn_viz.analysis.keypoint_evaluation import LANDMARK_GROUPS
from tests.analysis.conftest import find_faces68_dir

REPO = Path(__file__).resolve().parents[2]
SECTION = (
    REPO.joinpath("README.md").read_text().split("## Face keypoints from a photo", 1)[1].split("\n## ", 1)[0]
)


def readme_rows() -> dict[tuple[str, str], list[str]]:
    """(model, "given" | "found") -> the row's cells from "photos scored" on."""
    rows = {}
    for line in SECTION.splitlines():
        match = re.match(r"\| `(\w+-faces68)`[^|]*\| (given|MTCNN \+ 1 re-crop) \|(.*)\|$", line)
        if match:
            rows[(match[1], "given" if match[2] == "given" else "found")] = [
                c.strip() for c in match[3].split("|")
            ]
    return rows


def percent(value: float) -> str:
    return f"{100 * value:.2f}%"


@pytest.mark.parametrize("name", ["crmn-faces68", "resnet-faces68"])
def test_readme_face_table_is_the_cards(name):
    metrics = load(REPO / "checkpoints" / name, device="cpu").card["metrics"]
    rows = readme_rows()
    for protocol, key in (("given", "test_nme_box_given"), ("found", "test_nme_detector")):
        cells = rows[(name, protocol)]
        expected = [percent(metrics[key]), *(percent(metrics[f"{key}_{g}"]) for g in LANDMARK_GROUPS)]
        assert cells[2].strip("*") == expected[0], (name, protocol)
        assert cells[3:] == expected[1:], (name, protocol)
    assert rows[(name, "found")][1] == str(metrics["test_detector_no_face_found"])
    assert metrics["test_detector"] == "mtcnn"


@pytest.mark.slow
def test_crmn_viz_faces_re_makes_the_readme_table(tmp_path):
    from crmn_viz.frontends.cli import main

    faces68 = find_faces68_dir()
    if faces68 is None:
        pytest.skip("faces68 data not found")
    out = tmp_path / "faces.json"
    assert (
        main(
            [
                "faces",
                "crmn-faces68",
                "resnet-faces68",
                "--data-dir",
                str(faces68.parent),
                "--quiet",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    measured = json.loads(out.read_text())
    rows = readme_rows()
    for name, protocols in measured.items():
        for protocol, result in protocols.items():
            cells = rows[(name, "given" if protocol == "box given" else "found")]
            assert cells[2].strip("*") == percent(result["nme"])
            assert cells[3:] == [percent(result["nme_by_group"][g]) for g in LANDMARK_GROUPS]
