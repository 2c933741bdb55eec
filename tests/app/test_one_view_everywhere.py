"""A view listed once in ``crmn_viz.views.report`` appears on all three front ends.

The issue that asked for the views layer: "a new figure is added in one figures module plus one
view and then appears on all three front ends". Here a new view (its figure built in the test)
is added to :func:`crmn_viz.views.report.report_figures` only; the Streamlit Export page's "Every
figure of one image", the Gradio "All figures" tab and ``crmn-viz analyze`` must all show it.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from crmn_viz.frontends import cli, gradio_app
from crmn_viz.views import report
from crmn_viz.views.shown import shown

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def outputs_view(model, image):  # type: ignore[no-untyped-def]
    """The new view: one bar, the model's number of outputs (a figure no other view draws)."""
    figure = go.Figure(go.Bar(x=["outputs"], y=[int(model.config.num_outputs)]))
    return shown("new_outputs_view", figure, [image], kind="outputs")


@pytest.fixture
def one_more_view(monkeypatch: pytest.MonkeyPatch) -> None:
    original = report.report_figures

    def with_new_view(model, image, ig_steps=32, compute=None):  # type: ignore[no-untyped-def]
        figures = original(model, image, ig_steps=4, compute=compute)
        return [*figures, report.ReportFigure("new_outputs_view", outputs_view(model, image))]

    monkeypatch.setattr(report, "report_figures", with_new_view)


@pytest.fixture
def photo(tmp_path: Path) -> str:
    path = tmp_path / "ship.png"
    Image.new("RGB", (32, 32), (30, 90, 160)).save(path)
    return str(path)


def test_the_streamlit_export_page_makes_the_new_view(zoo: Path, one_more_view: None) -> None:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app_pages/export.py").run()
    at.button(key="export_all_go").click().run()
    assert not at.exception
    chosen = at.multiselect(key="export_figures").value
    assert any("new_outputs_view" in name for name in chosen), chosen
    assert len(chosen) > 1  # with every view of the checkpoint


def test_the_gradio_all_figures_tab_shows_the_new_view(zoo: Path, one_more_view: None, photo: str) -> None:
    gradio_app.cached_model.cache_clear()
    figures, picker, first = gradio_app.all_figures_handler(photo, "tiny-crmn")
    assert "new_outputs_view" in figures
    assert "new_outputs_view" in picker["choices"]
    shown_figure = gradio_app.pick_figure_handler(figures, "new_outputs_view")
    assert list(shown_figure.data[0].y) == [10]
    assert first is figures[next(iter(figures))]


def test_crmn_viz_analyze_writes_the_new_view(
    zoo: Path, one_more_view: None, photo: str, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    cli.main(["analyze", str(zoo / "tiny-crmn.safetensors"), photo, "--out", str(out), "--formats", "html"])
    written = sorted(path.name for path in out.iterdir())
    assert any("new_outputs_view" in name and name.endswith(".html") for name in written), written
