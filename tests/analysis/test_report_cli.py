"""``crmn-viz analyze``: every applicable figure and its data, for real images."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import crmn_viz
from crmn_viz.figures import browser_available, read_provenance
from crmn_viz.frontends.cli import main
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.views.report import figures_for_image
from tests.conftest import tiny_model

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
needs_data = pytest.mark.skipif(not (SHARED / "cifar10-jpeg.zip").exists(), reason="shared data not found")


def cifar_test_image(tmp_path: Path) -> Path:
    with zipfile.ZipFile(SHARED / "cifar10-jpeg.zip") as archive:
        name = next(n for n in archive.namelist() if n.startswith("test/cat/") and n.endswith(".jpg"))
        image = Image.open(io.BytesIO(archive.read(name)))
        path = tmp_path / "cat.png"
        image.save(path)
    return path


@needs_data
@pytest.mark.skipif(not browser_available(), reason="Chrome/Chromium needed for static export")
def test_analyze_cli_writes_figures_and_data_for_a_real_cifar_image(tmp_path):
    crmn_viz.save(
        tiny_model("crmn", num_outputs=10, input_size=32),
        tmp_path / "m",
        dataset="cifar10",
        class_names=[f"c{i}" for i in range(10)],
    )
    image = cifar_test_image(tmp_path)
    code = main(
        [
            "analyze",
            str(tmp_path / "m.safetensors"),
            str(image),
            "--out",
            str(tmp_path / "out"),
            "--formats",
            "png",
            "--dpi",
            "100",
            "--ig-steps",
            "8",
        ]
    )
    assert code == 0
    out = tmp_path / "out"
    index = json.loads((out / "index.json").read_text())
    pngs = {p for p in index["figures"] if p.endswith(".png")}
    weights_sha256 = hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest()
    image_sha256 = hashlib.sha256(image.read_bytes()).hexdigest()
    # the same views as the app: memory and per-block figures two columns wide, the others one
    widths = {"lstm_forget_gate": 716, "stepwise_probabilities": 716, "prediction": 350}
    for figure in (*widths, "attribution_integrated_gradients"):
        assert f"m__cat__{figure}.png" in pngs  # the checkpoint's name comes first
        png = out / f"m__cat__{figure}.png"
        assert Image.open(png).size[0] == widths.get(figure, 350)  # 3.5 or 7.16 in at 100 dpi
        assert list(out.glob(f"m__cat__{figure}.data.*")), "the numbers must be written beside the figure"
        meta = json.loads((out / f"m__cat__{figure}.meta.json").read_text())["provenance"]
        inside = read_provenance(png.read_bytes(), "png")
        assert inside == meta  # the same provenance inside the PNG and beside it
        assert meta["checkpoint"] == "m" and meta["arch"] == "crmn"
        assert meta["weights_sha256"] == weights_sha256
        assert meta["images"] == [{"name": "cat.png", "sha256": image_sha256}]
        assert meta["settings"]["figure"] == figure and meta["crmn_viz_version"] == crmn_viz.__version__
        assert Image.open(png).text["crmn-viz:provenance"] == json.dumps(
            meta, sort_keys=True, separators=(",", ":")
        )
    ig = json.loads((out / "m__cat__attribution_integrated_gradients.meta.json").read_text())["provenance"]
    assert ig["settings"]["method"] == "integrated_gradients" and ig["settings"]["method_options"] == {
        "n_steps": 8
    }
    assert (out / "m__cat__lstm_memory_animation.html").exists()
    # a figure laid out for two columns is exported at two columns, not squeezed or padded
    assert Image.open(out / "m__cat__lstm_memory_animation.png").size[0] == 716


@needs_data
def test_keypoint_model_gets_keypoint_and_memory_figures_for_a_real_face():
    photo = sorted((SHARED / "faces68" / "images").iterdir())[0]
    model = tiny_model("crmn", task="keypoints", num_outputs=136, pool=4, input_size=80)
    figures = figures_for_image(model, SelectedImage.from_path(photo), ig_steps=4)
    assert {"keypoints", "stepwise_keypoints", "lstm_forget_gate"} <= set(figures)
    assert "prediction" not in figures


def test_analyze_refuses_a_pickle_checkpoint_and_unreadable_images(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"\x80\x04K\x01.")
    assert main(["analyze", str(tmp_path / "model.pt"), "x.png", "--out", str(tmp_path / "o")]) == 2
    assert "never loaded" in capsys.readouterr().err
    crmn_viz.save(tiny_model("resnet"), tmp_path / "r")
    (tmp_path / "notes.png").write_text("hello")
    assert (
        main(
            [
                "analyze",
                str(tmp_path / "r.safetensors"),
                str(tmp_path / "notes.png"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "no readable image" in capsys.readouterr().err
