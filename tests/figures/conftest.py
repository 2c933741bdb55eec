"""Fixtures for the figure theme and export tests: small figures, a browser check, a launch counter."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from crmn_viz.figures import MODEL_COLOURS, browser_available, find_browser

NO_BROWSER_REASON = (
    "No Chrome/Chromium for kaleido (install with `apt-get install -y chromium` or set BROWSER_PATH), "
    "so PDF/SVG/PNG export cannot be exercised"
)


@pytest.fixture(scope="session")
def browser_path() -> str:
    """The Chrome/Chromium executable kaleido will use; skips the test when there is none."""
    if not browser_available():
        pytest.skip(NO_BROWSER_REASON)
    found = find_browser()
    assert found is not None
    return found


def make_line_figure() -> go.Figure:
    """Accuracy-vs-step curves for the three architectures, with a title and axis titles."""
    steps = np.arange(1, 9)
    figure = go.Figure()
    for offset, name in enumerate(("CRMN", "ReNet", "RiR")):
        accuracy = 0.5 + 0.4 * (1 - np.exp(-steps / (2 + offset)))
        figure.add_scatter(
            x=steps, y=accuracy, name=name, mode="lines+markers", line_color=MODEL_COLOURS[name]
        )
    figure.update_layout(
        title="Accuracy over recurrent steps", xaxis_title="Recurrent step", yaxis_title="Accuracy"
    )
    return figure


def make_heatmap_figure() -> go.Figure:
    """Two signed heatmaps side by side with make_subplots' (large) subplot titles."""
    values = np.linspace(-1, 1, 64).reshape(8, 8)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("a  CRMN", "b  ReNet"))
    figure.add_heatmap(z=values, zmid=0, row=1, col=1, showscale=False)
    figure.add_heatmap(z=-values, zmid=0, row=1, col=2, colorbar_title="Δ")
    return figure


@pytest.fixture(scope="session")
def figure_factories() -> dict[str, Callable[[], go.Figure]]:
    """Functions that build fresh test figures, for fixtures of any scope."""
    return {"line": make_line_figure, "heatmap": make_heatmap_figure}


@pytest.fixture
def line_figure() -> go.Figure:
    """A fresh line figure (see :func:`make_line_figure`)."""
    return make_line_figure()


@pytest.fixture
def heatmap_figure() -> go.Figure:
    """A fresh two-panel heatmap figure (see :func:`make_heatmap_figure`)."""
    return make_heatmap_figure()


class LaunchCounter:
    """Counts real browser launches (calls to ``kaleido.Kaleido.open``)."""

    def __init__(self) -> None:
        self.launches = 0


def _patch_browser_launch(monkeypatch: pytest.MonkeyPatch) -> LaunchCounter:
    import kaleido

    counter = LaunchCounter()
    original_open = kaleido.Kaleido.open

    async def counting_open(self, *args, **kwargs):
        counter.launches += 1
        return await original_open(self, *args, **kwargs)

    monkeypatch.setattr(kaleido.Kaleido, "open", counting_open)
    return counter


@pytest.fixture
def browser_launches(monkeypatch: pytest.MonkeyPatch) -> LaunchCounter:
    """Wrap ``kaleido.Kaleido.open`` (which starts Chrome) to count launches in one test."""
    return _patch_browser_launch(monkeypatch)


@pytest.fixture(scope="module")
def module_browser_launches() -> Iterator[LaunchCounter]:
    """Like ``browser_launches`` for module-scoped fixtures."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _patch_browser_launch(monkeypatch)
