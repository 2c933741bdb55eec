"""The front-end-independent glue behind the app: gallery, uploads, summaries, figure files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

from crmn_viz.checkpoints import CheckpointError
from crmn_viz.figures import apply_paper_style, browser_available
from crmn_viz.figures.files import FigureItem, export_bundle, figure_data_file, for_screen
from crmn_viz.inputs.gallery import GALLERY_DIR, gallery_datasets, list_gallery
from crmn_viz.inputs.selection import MAX_SIDE, SelectedImage
from crmn_viz.inputs.uploads import decode_image_uploads, load_checkpoint_upload
from crmn_viz.views.applicability import check_view
from crmn_viz.views.model_info import architecture_summary, card_summary
from tests.app.conftest import png_bytes
from tests.conftest import tiny_model

# --------------------------------------------------------------------------- gallery


def test_gallery_ships_real_test_images_of_every_dataset() -> None:
    assert gallery_datasets() == ["cifar10", "mnist", "faces68"]
    cifar = list_gallery("cifar10")
    assert sorted(entry.label for entry in cifar) == sorted(
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    )
    assert all(entry.path.suffix == ".png" and entry.path.exists() for entry in cifar)
    assert len(list_gallery("mnist")) >= 8
    faces = list_gallery("faces68")
    assert len(faces) == 6
    for entry in faces:
        assert entry.path.suffix == ".jpg" and entry.keypoints is not None
        assert entry.keypoints.shape == (68, 2)
        width, height = SelectedImage.from_path(entry.path).size
        assert max(width, height) <= 256
        assert (entry.keypoints >= -1).all() and (entry.keypoints[:, 0] <= width).all()
    total = sum(path.stat().st_size for path in GALLERY_DIR.rglob("*") if path.is_file())
    assert total < 1_500_000


def test_gallery_is_rebuilt_identically_from_the_offline_data(tmp_path: Path) -> None:
    from crmn_viz.data import resolve_data_dir
    from crmn_viz.inputs.make_gallery import build_gallery

    if not (resolve_data_dir() / "cifar10-jpeg.zip").exists():
        pytest.skip("the offline data sets are not on this machine")
    build_gallery(out=tmp_path)
    assert (tmp_path / "index.csv").read_text() == (GALLERY_DIR / "index.csv").read_text()
    assert (tmp_path / "faces68" / "keypoints.csv").read_text() == (
        GALLERY_DIR / "faces68" / "keypoints.csv"
    ).read_text()


# --------------------------------------------------------------------------- uploads


def test_image_uploads_keep_good_files_and_explain_bad_ones() -> None:
    result = decode_image_uploads(
        [("ok.png", png_bytes()), ("../../etc/evil name?.png", b"not an image"), ("doc.pdf", b"%PDF-1.4")]
    )
    assert [image.name for image in result.images] == ["ok.png"]
    assert result.errors[0].startswith("evil name_.png:")
    assert "PDF document" in result.errors[1]


def test_large_photos_are_downscaled_with_their_keypoints() -> None:
    points = np.array([[0.0, 0.0], [1999.0, 999.0]])
    image = SelectedImage.from_source("big", np.zeros((1000, 2000, 3), np.uint8), keypoints=points)
    assert image.size == (MAX_SIDE, MAX_SIDE // 2)
    assert image.keypoints is not None and image.keypoints[1, 0] == pytest.approx(MAX_SIDE - 1, abs=0.5)


def _pair(folder: Path, name: str) -> list[tuple[str, bytes]]:
    return [(f"{name}{ext}", (folder / f"{name}{ext}").read_bytes()) for ext in (".safetensors", ".json")]


def test_checkpoint_upload_loads_from_a_private_folder_that_is_then_removed(
    tiny_checkpoint_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    load_checkpoint_upload(_pair(tiny_checkpoint_dir, "tiny-rir"), device="cpu")  # torch's one-off caches
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    uploaded = load_checkpoint_upload(_pair(tiny_checkpoint_dir, "tiny-rir"), device="cpu")
    assert uploaded.name == "tiny-rir" and uploaded.model.arch == "rir"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("model.pt", b"\x80\x04pickle")], "never loaded"),
        ([("a.json", b"{}")], "exactly two files"),
        ([("a.safetensors", b"\x00" * 16), ("a.json", b"{not json")], "not valid JSON"),
    ],
)
def test_checkpoint_upload_refuses_wrong_files(files: list[tuple[str, bytes]], message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint_upload(files, device="cpu")


def test_checkpoint_upload_refuses_oversized_weights(tiny_checkpoint_dir: Path) -> None:
    with pytest.raises(CheckpointError, match="upload limit"):
        load_checkpoint_upload(_pair(tiny_checkpoint_dir, "tiny-crmn"), device="cpu", max_bytes=100)


# --------------------------------------------------------------------------- summaries


def test_architecture_summary_shows_where_the_lstm_taps_each_block() -> None:
    model = tiny_model("crmn")  # depth 14: 6 blocks, 16 x 16 input, pool 2
    summary = architecture_summary(model)
    assert [tap["block"] for tap in summary.lstm_taps] == [f"blocks.{k}.out" for k in range(6)]
    assert summary.lstm_taps[0]["pooled"] == "4×8×8 = 256"
    assert summary.lstm_taps[-1]["LSTM input"] == "64 + 192 zeros"
    assert {
        "group": "blocks",
        "names": "blocks.{0..5}.out",
        "shape": "4×16×16 … 16×4×4",
    } in summary.trace_groups
    assert summary.parameters == model.num_parameters()


def test_card_summary_flattens_metrics_and_training() -> None:
    rows = card_summary(
        {
            "arch": "crmn",
            "dataset": "cifar10",
            "input_size": [32, 32],
            "in_channels": 3,
            "num_parameters": 1234,
            "metrics": {"test_accuracy": 0.91234},
            "training": {"epochs": 8, "command": "crmn-viz train configs/x.toml"},
        }
    )
    assert (
        rows["test accuracy"] == "0.9123" and rows["training epochs"] == "8" and rows["parameters"] == "1,234"
    )
    assert rows["training command"] == "crmn-viz train configs/x.toml"  # how to re-make the model
    assert "training started from" not in rows and "training weight averaging" not in rows


def test_card_summary_names_the_parent_of_a_continued_run() -> None:
    rows = card_summary(
        {
            "arch": "crmn",
            "training": {
                "epochs": 35,
                "recipe": {"swa_from_epoch": 1, "init_from": "crmn-cifar10"},
                "initialised_from": {
                    "checkpoint": "crmn-cifar10",
                    "epochs": 135,
                    "metrics": {"test_accuracy": 0.8944, "test_num_images": 10000},
                },
            },
        }
    )
    assert rows["training started from"] == "crmn-cifar10 (135 epochs; accuracy 0.8944)"
    assert rows["training weight averaging"] == "SWA: the shipped weights average epochs 1-35"


def test_views_that_do_not_apply_suggest_zoo_checkpoints(tiny_checkpoint_dir: Path) -> None:
    verdict = check_view("faces", tiny_model("crmn"), tiny_checkpoint_dir)
    assert not verdict.applies and verdict.suggestions == ("tiny-faces",)
    assert "`tiny-faces`" in verdict.message and "CRMN classification model" in verdict.message
    assert check_view("lstm", tiny_model("crmn"), tiny_checkpoint_dir).applies
    empty = check_view("rir", tiny_model("resnet"), tiny_checkpoint_dir.parent / "no-such-zoo")
    assert "No such checkpoint is in the zoo" in empty.message
    assert check_view("renet", {"arch": "renet", "config": {}}).applies, "a card is accepted too"


def test_every_view_reads_capabilities_and_suggests_the_checkpoints_it_suits(
    tiny_checkpoint_dir: Path,
) -> None:
    from crmn_viz.views.applicability import VIEWS, suggest_checkpoints

    assert suggest_checkpoints("lstm", tiny_checkpoint_dir) == ["tiny-crmn", "tiny-faces"]
    assert suggest_checkpoints("renet", tiny_checkpoint_dir) == ["tiny-renet"]
    assert suggest_checkpoints("rir", tiny_checkpoint_dir) == ["tiny-rir"]
    assert suggest_checkpoints("faces", tiny_checkpoint_dir) == ["tiny-faces"]
    everything = suggest_checkpoints(directory=tiny_checkpoint_dir)
    assert everything == sorted(everything) and len(everything) == 5
    assert suggest_checkpoints(lambda model: model.block_count == 3, tiny_checkpoint_dir) == [
        "tiny-crmn",
        "tiny-faces",
        "tiny-resnet",
    ]
    applies = {
        arch: {key for key, view in VIEWS.items() if view.applies_to(tiny_model(arch))}
        for arch in ("crmn", "resnet", "renet", "rir")
    }
    common = {"overview", "attributions", "export", "blocks", "population", "compare"}
    assert applies == {  # Experiments edit a memory, a sweep or a removable stream: not a plain ResNet
        "crmn": common | {"lstm", "experiments"},
        "resnet": common,
        "renet": common | {"renet", "experiments"},
        "rir": common | {"rir", "experiments"},
    }


# --------------------------------------------------------------------------- figure files


def _figure() -> go.Figure:
    figure = go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="line"))
    return apply_paper_style(figure, columns=1)


def test_screen_copy_enlarges_type_and_size_but_not_the_original() -> None:
    figure = _figure()
    screen = for_screen(figure, 1.5)
    assert screen.layout.width == pytest.approx(1.5 * figure.layout.width)
    assert screen.layout.xaxis.tickfont.size == pytest.approx(1.5 * figure.layout.xaxis.tickfont.size)
    assert figure.layout.width == pytest.approx(336)


def test_export_bundle_zips_figures_with_their_data() -> None:
    items = [
        FigureItem("first", _figure(), {"x": np.arange(3), "y": np.ones(3)}),
        FigureItem("second", _figure()),
    ]
    bundle = export_bundle(items, formats=("html", "json"), columns=2)
    assert bundle.name == "crmn-viz-figures.zip" and bundle.mime == "application/zip"
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("first.meta.json"))
    assert names == {
        "first.html",
        "first.json",
        "first.data.csv",
        "first.meta.json",
        "second.html",
        "second.json",
    }
    assert meta["width_in"] == pytest.approx(7.16)


def test_export_bundle_writes_each_figures_provenance_beside_it() -> None:
    from crmn_viz.provenance import Provenance

    model = tiny_model("resnet")
    provenance = Provenance.of(model, [("cat.png", b"cat")], {"top_k": 3}, checkpoint="tiny-resnet")
    bundle = export_bundle([FigureItem("tiny-resnet__bar", _figure(), None, provenance)], formats=("html",))
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        meta = json.loads(archive.read("tiny-resnet__bar.meta.json"))
        page = archive.read("tiny-resnet__bar.html").decode()
    assert meta["provenance"] == provenance.to_dict()
    assert "crmn-viz:provenance" in page and provenance.weights_sha256 in page


def test_export_bundle_gives_one_file_when_asked() -> None:
    bundle = export_bundle([FigureItem("only", _figure())], formats=("json",), single_file=True)
    assert bundle.name == "only.json" and json.loads(bundle.data)["layout"]["width"] == pytest.approx(336)
    with pytest.raises(ValueError, match="exactly one figure"):
        export_bundle(
            [FigureItem("a", _figure()), FigureItem("b", _figure())], formats=("json",), single_file=True
        )


def test_figure_data_file_uses_the_exporters_format() -> None:
    table = figure_data_file("line plot", {"x": np.arange(3), "y": np.ones(3)})
    assert table.name == "line_plot.data.csv" and table.data.decode().splitlines()[0] == "x,y"
    arrays = figure_data_file("maps", {"z": np.ones((2, 3))})
    assert arrays.name == "maps.data.npz"
    assert np.array_equal(np.load(io.BytesIO(arrays.data))["z"], np.ones((2, 3)))


@pytest.mark.skipif(not browser_available(), reason="needs Chromium for PDF export")
def test_export_bundle_draws_a_pdf_with_chromium() -> None:
    bundle = export_bundle([FigureItem("fig", _figure())], formats=("pdf",), single_file=True)
    assert bundle.name == "fig.pdf" and bundle.data.startswith(b"%PDF")


# --------------------------------------------------------------------------- the Export page's list


def test_the_figure_list_keeps_different_figures_apart_and_reports_what_it_drops() -> None:
    from crmn_viz.frontends.streamlit.figures import FigureList
    from crmn_viz.provenance import Provenance

    model = tiny_model("crmn", num_outputs=10, input_size=16)
    figure = _figure()
    figures = FigureList(capacity=3)
    forget = Provenance.of(model, [("cat.png", b"cat")], {"quantity": "forget_gate"}, checkpoint="a")
    assert figures.add("a__gates_cat", figure, forget) == "a__gates_cat"
    # the same figure of the same inputs and settings, seen again later: one entry, moved last
    again = Provenance.of(model, [("cat.png", b"cat")], {"quantity": "forget_gate"}, checkpoint="a")
    assert figures.add("a__gates_cat", figure, again) == "a__gates_cat" and len(figures) == 1
    # other settings under the same name: a second entry, never a silent replacement
    inputs = Provenance.of(model, [("cat.png", b"cat")], {"quantity": "input_gate"}, checkpoint="a")
    second = figures.add("a__gates_cat", figure, inputs)
    assert second == f"a__gates_cat__{inputs.identity[:8]}" and len(figures) == 2
    assert figures.entries["a__gates_cat"].provenance is again
    figures.add("b__gates_cat", figure, forget)
    figures.add("c__gates_cat", figure, forget)
    assert figures.dropped == ["a__gates_cat"] and list(figures.entries) == [
        second,
        "b__gates_cat",
        "c__gates_cat",
    ]


def test_pictures_go_to_the_screen_as_png_with_the_same_pixels() -> None:
    import base64

    from PIL import Image

    from crmn_viz.figures import plot_keypoints

    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    figure = plot_keypoints(photo, [rng.uniform(5, 25, size=(68, 2))])
    screen = for_screen(figure)
    source = screen.data[0].source
    assert screen.data[0].z is None and source.startswith("data:image/png;base64,")
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGB"))
    np.testing.assert_array_equal(decoded, np.asarray(figure.data[0].z))
    assert len(screen.to_json()) < len(figure.to_json()) / 3
    assert figure.data[0].source is None  # the figure to export keeps its pixel values
