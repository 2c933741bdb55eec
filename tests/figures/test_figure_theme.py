"""Tests for the paper theme: template, palettes, sizes and apply_paper_style (no browser needed)."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from crmn_viz.figures import (
    CATEGORICAL_COLOURS,
    DIVERGING_COLORSCALE,
    MODEL_COLOURS,
    OKABE_ITO,
    ONE_COLUMN_WIDTH_IN,
    PAPER_TEMPLATE_NAME,
    SEQUENTIAL_COLORSCALE,
    TWO_COLUMN_WIDTH_IN,
    FontSizes,
    apply_paper_style,
    column_width_in,
    paper_template,
    pt_to_px,
    register_paper_template,
    symmetric_range,
)
from crmn_viz.figures.theme import default_height_in, inches_to_px

HEX_COLOUR = re.compile(r"^#[0-9A-F]{6}$")


def test_units() -> None:
    assert pt_to_px(72) == pytest.approx(96)
    assert pt_to_px(8) == pytest.approx(10.6667, abs=1e-3)
    assert inches_to_px(ONE_COLUMN_WIDTH_IN) == pytest.approx(336)
    assert column_width_in(1) == 3.5
    assert column_width_in(2) == 7.16
    assert default_height_in(1) == 2.5
    assert default_height_in(2) == 3.0
    assert default_height_in(width_in=7.0) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="columns must be 1 or 2"):
        column_width_in(3)  # type: ignore[arg-type]


def test_template_is_registered_but_not_made_default() -> None:
    assert PAPER_TEMPLATE_NAME == "crmn_paper"
    assert PAPER_TEMPLATE_NAME in pio.templates
    assert pio.templates.default != PAPER_TEMPLATE_NAME
    layout = pio.templates[PAPER_TEMPLATE_NAME].layout
    assert layout.paper_bgcolor == "#FFFFFF" and layout.plot_bgcolor == "#FFFFFF"
    assert layout.font.family.startswith("Arial")
    assert layout.font.size == pytest.approx(pt_to_px(FontSizes.base))
    assert layout.xaxis.showline and layout.xaxis.linewidth == 1 and not layout.xaxis.showgrid
    assert layout.yaxis.ticks == "outside"
    assert list(layout.colorway) == list(CATEGORICAL_COLOURS)


def test_register_paper_template_can_set_default() -> None:
    previous = pio.templates.default
    try:
        assert register_paper_template(set_default=True) == PAPER_TEMPLATE_NAME
        assert pio.templates.default == PAPER_TEMPLATE_NAME
    finally:
        pio.templates.default = previous


def test_paper_template_returns_independent_copies() -> None:
    template = paper_template()
    template.layout.font.size = 99
    assert pio.templates[PAPER_TEMPLATE_NAME].layout.font.size != 99


def test_palettes_are_colour_blind_safe_choices() -> None:
    assert len(OKABE_ITO) == 8
    assert set(CATEGORICAL_COLOURS) == set(OKABE_ITO.values())
    assert all(HEX_COLOUR.match(colour) for colour in CATEGORICAL_COLOURS)
    assert CATEGORICAL_COLOURS[-1] == OKABE_ITO["yellow"]  # pale yellow last on white paper
    assert set(MODEL_COLOURS) >= {"CRMN", "ReNet", "RiR"}
    assert len(set(MODEL_COLOURS.values())) == len(MODEL_COLOURS)
    assert SEQUENTIAL_COLORSCALE[0][1].lower() == "#440154"  # viridis starts dark purple
    blue_end, red_end = DIVERGING_COLORSCALE[0][1], DIVERGING_COLORSCALE[-1][1]
    assert blue_end == "rgb(5,48,97)" and red_end == "rgb(103,0,31)"  # negative blue, positive red


def test_symmetric_range() -> None:
    assert symmetric_range([-0.2, 0.5, np.nan, np.inf]) == (-0.5, 0.5)
    assert symmetric_range(np.array([[-3.0, 1.0]])) == (-3.0, 3.0)
    assert symmetric_range([]) == (-1.0, 1.0)
    assert symmetric_range([0, 0]) == (-1.0, 1.0)


@pytest.mark.parametrize(("columns", "width_px", "height_px"), [(1, 336, 240), (2, 687.36, 288)])
def test_apply_paper_style_sizes_for_columns(
    line_figure: go.Figure, columns: int, width_px: float, height_px: float
) -> None:
    styled = apply_paper_style(line_figure, columns=columns)
    assert styled.layout.width == pytest.approx(width_px)
    assert styled.layout.height == pytest.approx(height_px)
    assert styled.layout.autosize is False


def test_apply_paper_style_returns_new_figure_and_leaves_original(line_figure: go.Figure) -> None:
    before = line_figure.to_dict()
    styled = apply_paper_style(line_figure)
    assert styled is not line_figure
    assert line_figure.to_dict() == before
    assert styled.layout.template.layout.font.family == pio.templates[PAPER_TEMPLATE_NAME].layout.font.family


def test_apply_paper_style_removes_title_unless_kept(line_figure: go.Figure) -> None:
    assert apply_paper_style(line_figure).layout.title.text is None
    kept = apply_paper_style(line_figure, keep_title=True)
    assert kept.layout.title.text == "Accuracy over recurrent steps"
    assert kept.layout.title.font.size == pytest.approx(pt_to_px(9))
    assert kept.layout.margin.t > apply_paper_style(line_figure).layout.margin.t


def test_apply_paper_style_sets_print_font_sizes(line_figure: go.Figure) -> None:
    line_figure.update_layout(font_size=20, xaxis_title_font_size=30, xaxis_tickfont_size=25)
    styled = apply_paper_style(line_figure, font_size_pt=9)
    assert styled.layout.font.size == pytest.approx(pt_to_px(9))
    assert styled.layout.xaxis.title.font.size == pytest.approx(pt_to_px(9))
    assert styled.layout.xaxis.tickfont.size == pytest.approx(pt_to_px(8))
    assert styled.layout.yaxis.tickfont.size == pytest.approx(pt_to_px(8))
    assert styled.layout.legend.font.size == pytest.approx(pt_to_px(8))
    assert styled.layout.font.family.startswith("Arial")


def test_apply_paper_style_tames_subplot_titles_and_makes_room(heatmap_figure: go.Figure) -> None:
    assert heatmap_figure.layout.annotations[0].font.size == 16  # make_subplots' default
    styled = apply_paper_style(heatmap_figure, columns=2, height_in=2.0)
    assert all(annotation.font.size <= pt_to_px(9) for annotation in styled.layout.annotations)
    assert styled.layout.margin.t >= pt_to_px(9)
    assert styled.data[1].colorbar.tickfont.size == pytest.approx(pt_to_px(7))
    assert styled.layout.height == pytest.approx(192)


def test_apply_paper_style_accepts_dicts_and_custom_sizes(line_figure: go.Figure) -> None:
    styled = apply_paper_style(line_figure.to_dict(), width_in=5, height_in=2)
    assert isinstance(styled, go.Figure)
    assert (styled.layout.width, styled.layout.height) == (480, 192)
    assert TWO_COLUMN_WIDTH_IN == 7.16


@pytest.mark.parametrize(
    "arguments",
    [{"columns": 3}, {"width_in": 0}, {"height_in": -1}, {"font_size_pt": 0}],
)
def test_apply_paper_style_rejects_bad_arguments(line_figure: go.Figure, arguments: dict) -> None:
    with pytest.raises(ValueError):
        apply_paper_style(line_figure, **arguments)
