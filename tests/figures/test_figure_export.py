"""Tests for figure export: real PDF/SVG/PNG files from Chromium, sizes, one browser per batch, sidecars."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from PIL import Image

from crmn_viz.figures import (
    FigureExport,
    FigureExportError,
    apply_paper_style,
    export_figure,
    export_figures,
    find_browser,
)

FORMATS = ("pdf", "svg", "png", "html", "json")
POINT_TOLERANCE = 1.5  # Chrome rounds PDF page sizes to 1/300 in steps (0.24 pt)


def pdf_pages_and_size(path: Path) -> tuple[int, float, float]:
    """Return (page count, width pt, height pt), with pypdf when installed, else by reading the file."""
    try:
        from pypdf import PdfReader
    except ImportError:
        content = path.read_bytes()
        pages = len(re.findall(rb"/Type\s*/Page\b", content))
        box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", content)
        assert box is not None
        x0, y0, x1, y1 = (float(value) for value in box.groups())
        return pages, x1 - x0, y1 - y0
    reader = PdfReader(path)
    box = reader.pages[0].mediabox
    return len(reader.pages), float(box.width), float(box.height)


def dark_pixel_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    dark = pixels.astype(int).sum(axis=2) < 200
    rows, columns = np.nonzero(dark)
    return int(columns.min()), int(rows.min()), int(columns.max()), int(rows.max())


def margin_probe_figure() -> go.Figure:
    """A black plot area 2 px from every edge: any shift or clipping of the page shows."""
    figure = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="markers", marker_opacity=0))
    figure.update_layout(
        template="none",
        margin={"l": 2, "r": 2, "t": 2, "b": 2},
        plot_bgcolor="#000000",
        paper_bgcolor="#FFFFFF",
        xaxis_visible=False,
        yaxis_visible=False,
        showlegend=False,
    )
    return figure


@pytest.fixture(scope="module")
def batch(tmp_path_factory, browser_path, module_browser_launches, figure_factories):
    """Export four figures in five formats in one call, with data sidecars; shared by the tests below."""
    out_dir = tmp_path_factory.mktemp("batch") / "figures"  # missing folder: must be created
    line = apply_paper_style(figure_factories["line"](), columns=1)
    steps = np.arange(1, 9)
    items = [
        FigureExport(
            name="line_one_column",
            figure=line,
            data={"step": steps, "CRMN": np.linspace(0, 1, 8), "model": ["CRMN"] * 8},
            metadata={"caption": "Accuracy", "seed": np.int64(3)},
        ),
        FigureExport(
            name="maps_two_column",
            figure=apply_paper_style(figure_factories["heatmap"](), columns=2),
            columns=2,
            height_in=2.4,
            data={"crmn": np.arange(64.0).reshape(8, 8), "renet": -np.arange(64.0).reshape(8, 8)},
        ),
        FigureExport(name="custom_size", figure=figure_factories["line"](), width_in=2.0, height_in=1.5),
        FigureExport(name="margin_probe", figure=margin_probe_figure(), width_in=3.5, height_in=2.5),
    ]
    paths = export_figures(items, out_dir, formats=FORMATS, dpi=300)
    return {"out_dir": out_dir, "paths": paths, "launches": module_browser_launches.launches}


def test_batch_starts_the_browser_once(batch) -> None:
    assert batch["launches"] == 1


def test_batch_returns_every_file_in_order(batch) -> None:
    names = [path.name for path in batch["paths"]]
    expected = [f"line_one_column.{extension}" for extension in FORMATS]
    expected += ["line_one_column.data.csv", "line_one_column.meta.json"]
    expected += [f"maps_two_column.{extension}" for extension in FORMATS]
    expected += ["maps_two_column.data.npz", "maps_two_column.meta.json"]
    expected += [f"custom_size.{extension}" for extension in FORMATS]
    expected += [f"margin_probe.{extension}" for extension in FORMATS]
    assert names == expected
    assert all(path.is_file() and path.stat().st_size > 0 for path in batch["paths"])
    assert not list(batch["out_dir"].glob(".*")), "temporary files were left behind"


@pytest.mark.parametrize(
    ("name", "expected_pixels"),
    [("line_one_column", (1050, 750)), ("maps_two_column", (2148, 720)), ("custom_size", (600, 450))],
)
def test_png_pixels_are_inches_times_dpi(batch, name: str, expected_pixels: tuple[int, int]) -> None:
    with Image.open(batch["out_dir"] / f"{name}.png") as image:
        assert image.format == "PNG"
        assert image.size == expected_pixels
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)


@pytest.mark.parametrize(
    ("name", "expected_points"),
    [("line_one_column", (252, 180)), ("maps_two_column", (515.52, 172.8)), ("custom_size", (144, 108))],
)
def test_pdf_has_one_page_of_the_printed_size(batch, name: str, expected_points: tuple[float, float]) -> None:
    path = batch["out_dir"] / f"{name}.pdf"
    assert path.read_bytes().startswith(b"%PDF")
    pages, width_pt, height_pt = pdf_pages_and_size(path)
    assert pages == 1
    assert width_pt == pytest.approx(expected_points[0], abs=POINT_TOLERANCE)
    assert height_pt == pytest.approx(expected_points[1], abs=POINT_TOLERANCE)


@pytest.mark.parametrize(
    ("name", "width", "height"),
    [
        ("line_one_column", "3.5in", "2.5in"),
        ("maps_two_column", "7.16in", "2.4in"),
        ("custom_size", "2in", "1.5in"),
    ],
)
def test_svg_is_xml_with_physical_size(batch, name: str, width: str, height: str) -> None:
    root = ElementTree.parse(batch["out_dir"] / f"{name}.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == (width, height)
    view_box = [float(value) for value in root.get("viewBox").split()]
    assert view_box[2] == pytest.approx(float(width[:-2]) * 96)
    assert view_box[3] == pytest.approx(float(height[:-2]) * 96)


def test_svg_and_pdf_keep_text_as_text_in_a_sans_font(batch) -> None:
    svg_text = (batch["out_dir"] / "line_one_column.svg").read_text()
    assert "Recurrent step" in svg_text
    assert "Arial" in svg_text
    pdf = (batch["out_dir"] / "line_one_column.pdf").read_bytes()
    embedded_fonts = set(re.findall(rb"/BaseFont\s*/(?:[A-Z]{6}\+)?([\w-]+)", pdf))
    # Arial or a metric twin (Liberation Sans comes with Debian's chromium as fonts-liberation).
    assert embedded_fonts & {b"Arial", b"ArialMT", b"Helvetica", b"LiberationSans", b"NimbusSans-Regular"}, (
        embedded_fonts
    )


def test_html_and_json_round_trip(batch) -> None:
    html = (batch["out_dir"] / "line_one_column.html").read_text()
    assert "<html>" in html and "Plotly.newPlot" in html
    assert not re.search(r"<script[^>]*src=\"https?://", html), "the HTML must work offline"
    figure = pio.read_json(batch["out_dir"] / "line_one_column.json")
    assert [trace.name for trace in figure.data] == ["CRMN", "ReNet", "RiR"]
    assert figure.layout.width == pytest.approx(336)


def test_csv_data_sidecar_round_trips(batch) -> None:
    with (batch["out_dir"] / "line_one_column.data.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(row["step"]) for row in rows] == list(range(1, 9))
    assert [float(row["CRMN"]) for row in rows] == np.linspace(0, 1, 8).tolist()
    assert {row["model"] for row in rows} == {"CRMN"}


def test_npz_data_sidecar_round_trips(batch) -> None:
    with np.load(batch["out_dir"] / "maps_two_column.data.npz") as arrays:
        np.testing.assert_array_equal(arrays["crmn"], np.arange(64.0).reshape(8, 8))
        np.testing.assert_array_equal(arrays["renet"], -np.arange(64.0).reshape(8, 8))


def test_meta_json_sidecars(batch) -> None:
    meta = json.loads((batch["out_dir"] / "line_one_column.meta.json").read_text())
    assert meta["figure"] == "line_one_column"
    assert meta["files"] == [f"line_one_column.{extension}" for extension in FORMATS]
    assert (meta["width_in"], meta["height_in"], meta["width_pt"]) == (3.5, 2.5, 252)
    assert (meta["dpi"], meta["png_pixels"]) == (300, [1050, 750])
    assert meta["data_file"] == "line_one_column.data.csv"
    assert meta["data"]["columns"] == ["step", "CRMN", "model"] and meta["data"]["rows"] == 8
    assert meta["metadata"] == {"caption": "Accuracy", "seed": 3}
    assert "plotly" in meta["software"] and "kaleido" in meta["software"]
    maps_meta = json.loads((batch["out_dir"] / "maps_two_column.meta.json").read_text())
    assert maps_meta["data"] == {
        "kind": "npz",
        "arrays": {
            "crmn": {"shape": [8, 8], "dtype": "float64"},
            "renet": {"shape": [8, 8], "dtype": "float64"},
        },
    }


def test_png_shows_the_whole_figure(batch) -> None:
    with Image.open(batch["out_dir"] / "margin_probe.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    # 2 px layout margins at 300/96 scale = 6.25 px of white on every side.
    left, top, right, bottom = dark_pixel_box(pixels)
    assert abs(left - 6) <= 1 and abs(top - 6) <= 1
    assert abs(right - 1043) <= 1 and abs(bottom - 743) <= 1


@pytest.mark.skipif(
    shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is needed to rasterise PDFs"
)
def test_pdf_is_neither_shifted_nor_clipped(batch, tmp_path: Path) -> None:
    # kaleido 1.x prints with 0.1 in page margins; the export must remove them.
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "96",
            "-png",
            "-singlefile",
            str(batch["out_dir"] / "margin_probe.pdf"),
            str(tmp_path / "p"),
        ],
        check=True,
        timeout=60,
    )
    with Image.open(tmp_path / "p.png") as image:
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.shape[:2] == (240, 336)
    left, top, right, bottom = dark_pixel_box(pixels)
    assert (left, top) == (2, 2)
    assert (right, bottom) == (333, 237)


def test_export_figure_png_from_styled_figure(
    tmp_path: Path, browser_path: str, browser_launches, line_figure
) -> None:
    styled = apply_paper_style(line_figure, columns=1)
    path = export_figure(styled, tmp_path / "single.png", dpi=300)
    assert path == tmp_path / "single.png"
    assert browser_launches.launches == 1
    with Image.open(path) as image:
        assert image.size == (1050, 750)  # 3.5 in x 300 dpi
        pixels = np.asarray(image.convert("RGB"))
    assert pixels[0, 0].tolist() == [255, 255, 255]  # white paper
    assert (pixels.sum(axis=2) < 100).mean() > 0.002  # black axes and text drawn


def test_export_works_inside_a_running_event_loop(tmp_path: Path, browser_path: str, line_figure) -> None:
    async def export_from_coroutine() -> Path:
        return export_figure(line_figure, tmp_path / "from_loop.png", dpi=50, width_in=2, height_in=1)

    path = asyncio.run(export_from_coroutine())
    with Image.open(path) as image:
        assert image.size == (100, 50)


def test_html_and_json_need_no_browser(tmp_path: Path, monkeypatch, browser_launches, line_figure) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    paths = export_figures({"interactive": line_figure}, tmp_path, formats=("html", "json"))
    assert [path.name for path in paths] == ["interactive.html", "interactive.json"]
    assert browser_launches.launches == 0


def test_bad_browser_path_gives_install_advice(
    tmp_path: Path, monkeypatch, browser_launches, line_figure
) -> None:
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    assert find_browser() == str(tmp_path / "no-such-chrome")
    with pytest.raises(FigureExportError, match="BROWSER_PATH") as caught:
        export_figure(line_figure, tmp_path / "figure.pdf")
    assert "apt-get install -y chromium" in str(caught.value)
    assert browser_launches.launches == 0
    assert not (tmp_path / "figure.pdf").exists()


def test_missing_browser_gives_install_advice(tmp_path: Path, monkeypatch, line_figure) -> None:
    import crmn_viz.figures.export as export_module

    monkeypatch.setattr(export_module, "find_browser", lambda: None)
    assert not export_module.browser_available()
    with pytest.raises(FigureExportError, match="No Chrome or Chromium was found") as caught:
        export_figure(line_figure, tmp_path / "figure.svg")
    assert "apt-get install -y chromium" in str(caught.value)
    assert "BROWSER_PATH" in str(caught.value)


def test_missing_kaleido_gives_install_advice(tmp_path: Path, monkeypatch, line_figure) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "kaleido", None)  # makes `import kaleido` fail
    with pytest.raises(FigureExportError, match=r"pip install 'kaleido>=1'"):
        export_figure(line_figure, tmp_path / "figure.png")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda figure, folder: export_figure(figure, folder / "figure.gif"), "Cannot tell the format"),
        (lambda figure, folder: export_figure(figure, folder / "figure"), "Cannot tell the format"),
        (lambda figure, folder: export_figure(figure, folder / "figure.png", dpi=0), "dpi must be"),
        (lambda figure, folder: export_figure(figure, folder / "f.png", width_in=-1), "width_in must be"),
        (
            lambda figure, folder: export_figures({"a": figure}, folder, formats=("tiff",)),
            "Unsupported formats",
        ),
        (lambda figure, folder: export_figures([("a", figure), ("a", figure)], folder), "unique"),
        (lambda figure, folder: export_figures({"../escape": figure}, folder), "cannot be a file name"),
        (lambda figure, folder: export_figures([figure], folder), "FigureExport or a"),
        (
            lambda figure, folder: export_figure(figure, folder / "f.html", data={"mixed": [1, "a", None]}),
            "not a numeric or text array",
        ),
        (
            lambda figure, folder: export_figure(figure, folder / "f.html", data=[1, 2]),
            "must be a non-empty mapping",
        ),
    ],
    ids=[
        "gif",
        "no-extension",
        "dpi",
        "width",
        "format",
        "duplicate",
        "unsafe-name",
        "bare",
        "object-data",
        "list",
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, line_figure, call, message
) -> None:
    with pytest.raises(ValueError, match=message):
        call(line_figure, tmp_path)
    assert not [path for path in tmp_path.iterdir() if path.is_file()]


def test_dataframe_and_ragged_dict_data(tmp_path: Path, line_figure) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"step": [1, 2, 3], "accuracy": [0.5, 0.7, 0.8]})
    export_figure(line_figure, tmp_path / "frame.json", data=frame)
    np.testing.assert_array_equal(pandas.read_csv(tmp_path / "frame.data.csv"), frame)
    export_figure(line_figure, tmp_path / "ragged.json", data={"short": [1, 2], "long": [1, 2, 3]})
    with np.load(tmp_path / "ragged.data.npz") as arrays:
        assert arrays["long"].tolist() == [1, 2, 3]
