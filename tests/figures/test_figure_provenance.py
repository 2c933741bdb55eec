"""Provenance inside exported figure files, read back with each format's own tools."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

import crmn_viz
from crmn_viz.figures import export_figure, export_figure_bytes, export_figures, read_provenance
from crmn_viz.figures.export import FigureExport
from crmn_viz.provenance import ImageRecord, Provenance
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> crmn_viz.TracedModel:
    folder = tmp_path_factory.mktemp("provenance")
    torch.manual_seed(0)
    crmn_viz.save(tiny_model("crmn", num_outputs=10, input_size=16), folder / "tiny-crmn", dataset="cifar10")
    return crmn_viz.load(folder / "tiny-crmn", device="cpu")


@pytest.fixture()
def provenance(loaded: crmn_viz.TracedModel) -> Provenance:
    return Provenance.of(
        loaded,
        images=[("cat <1>.png", b"the cat's bytes"), ("dog.png", b"the dog's bytes")],
        settings={
            "quantity": "forget_gate",
            "units": np.arange(3),
            "step": np.int64(4),
            "box": (1.5, 2, 3, 4),
        },
    )


def line() -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[0.1, 0.5, 0.2], name="forget gate f"))


def test_provenance_names_the_weights_and_images_by_the_digests_of_their_bytes(
    loaded: crmn_viz.TracedModel, provenance: Provenance
) -> None:
    record = provenance.to_dict()
    assert record["checkpoint"] == "tiny-crmn" and record["arch"] == "crmn"
    assert record["weights_sha256"] == loaded.checkpoint.weights_sha256
    assert record["images"] == [
        {"name": "cat <1>.png", "sha256": hashlib.sha256(b"the cat's bytes").hexdigest()},
        {"name": "dog.png", "sha256": hashlib.sha256(b"the dog's bytes").hexdigest()},
    ]
    assert record["settings"] == {
        "box": [1.5, 2, 3, 4],
        "quantity": "forget_gate",
        "step": 4,
        "units": [0, 1, 2],
    }
    assert record["crmn_viz_version"] == crmn_viz.__version__
    assert Provenance.from_dict(json.loads(provenance.to_json())) == provenance
    later = Provenance.from_dict({**record, "created": "2030-01-01T00:00:00+00:00"})
    assert later.identity == provenance.identity  # the time is not part of what made it
    assert provenance.with_settings(step=5).identity != provenance.identity


def test_an_unsaved_model_is_named_by_its_state_digest() -> None:
    model = tiny_model("resnet")
    first = Provenance.of(model)
    assert first.checkpoint == "unsaved resnet" and len(first.weights_sha256) == 64
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert Provenance.of(model).weights_sha256 != first.weights_sha256


def test_html_and_meta_json_carry_the_provenance(tmp_path: Path, provenance: Provenance) -> None:
    path = export_figure(line(), tmp_path / "tiny-crmn__gates.html", provenance=provenance)
    assert read_provenance(path.read_bytes(), "html") == provenance.to_dict()
    meta = json.loads((tmp_path / "tiny-crmn__gates.meta.json").read_text())
    assert meta["provenance"] == provenance.to_dict()
    assert "<title>tiny-crmn__gates (tiny-crmn)</title>" in path.read_text()


@pytest.mark.usefixtures("browser_path")
def test_pdf_svg_and_png_carry_the_provenance_where_their_readers_look(
    tmp_path: Path, provenance: Provenance
) -> None:
    written = export_figures(
        [
            FigureExport(
                "tiny-crmn__gates", line(), data={"y": np.array([0.1, 0.5, 0.2])}, provenance=provenance
            )
        ],
        tmp_path,
        formats=("pdf", "svg", "png"),
        dpi=100,
    )
    files = {path.suffix: path for path in written}
    expected = provenance.to_dict()

    info = subprocess.run(["pdfinfo", str(files[".pdf"])], capture_output=True, text=True, check=True).stdout
    assert "Title:           tiny-crmn__gates (tiny-crmn)" in info
    assert "Kaleido" not in info
    assert provenance.weights_sha256 in info  # in the Subject and the Keywords
    assert "checkpoint=tiny-crmn" in info and "quantity=forget_gate" in info
    assert read_provenance(files[".pdf"].read_bytes(), "pdf") == expected

    root = ElementTree.fromstring(files[".svg"].read_bytes())
    namespace = "{http://www.w3.org/2000/svg}"
    (metadata,) = root.findall(f"{namespace}metadata")
    assert json.loads("".join(metadata.itertext())) == expected
    assert root.find(f"{namespace}title").text == "tiny-crmn__gates (tiny-crmn)"
    assert read_provenance(files[".svg"].read_bytes(), "svg") == expected

    with Image.open(files[".png"]) as picture:
        picture.load()
        assert json.loads(picture.text["crmn-viz:provenance"]) == expected
        assert picture.text["Title"] == "tiny-crmn__gates (tiny-crmn)"
        assert picture.text["Software"] == f"crmn-viz {crmn_viz.__version__}"
        assert round(picture.info["dpi"][0]) == 100
    assert json.loads(files[".json"].read_text())["provenance"] == expected


@pytest.mark.usefixtures("browser_path")
def test_export_to_bytes_draws_the_same_file_as_export_to_disk(
    tmp_path: Path, provenance: Provenance
) -> None:
    path = export_figure(line(), tmp_path / "fig.png", dpi=100, provenance=provenance)
    drawn = export_figure_bytes(line(), "png", dpi=100, provenance=provenance, name="fig")
    assert drawn == path.read_bytes()
    assert Image.open(io.BytesIO(drawn)).size == Image.open(path).size


def test_image_records_hash_the_file_not_the_decoded_pixels(tmp_path: Path) -> None:
    from crmn_viz.inputs.selection import SelectedImage

    picture = Image.fromarray(np.full((8, 8, 3), 120, dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    (tmp_path / "grey.jpg").write_bytes(data)
    from_bytes = SelectedImage.from_bytes("grey.jpg", data)
    from_path = SelectedImage.from_path(tmp_path / "grey.jpg")
    expected = ImageRecord("grey.jpg", hashlib.sha256(data).hexdigest())
    assert from_bytes.record == expected and from_path.record == expected
