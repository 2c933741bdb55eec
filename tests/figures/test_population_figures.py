"""The unit x class selectivity figure: what it draws equals the result, in the result's order,
and it exports like every other figure."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest

from crmn_viz.analysis.selectivity import UnitSelectivity, unit_selectivity
from crmn_viz.figures import export_figure, figure_data
from crmn_viz.figures.population import plot_unit_selectivity, shown_units

CLASS_NAMES = ["airplane", "automobile", "bird", "cat"]


def result_of(values_shift: float = 0.0, seed: int = 0, **options: object) -> UnitSelectivity:
    """Nine units over 4 classes of 30 images; units 2, 5 and 7 prefer classes 1, 3 and 0."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 30)
    values = rng.normal(size=(120, 9)) + values_shift
    for unit, preferred in ((2, 1), (5, 3), (7, 0)):
        values[:, unit] += 2.0 * (labels == preferred)
    return unit_selectivity(
        values, labels, CLASS_NAMES, quantity="lstm.hidden", step=2, bootstrap=50, seed=1, **options
    )


def test_heatmap_and_points_follow_the_display_order() -> None:
    result = result_of()
    figure = plot_unit_selectivity(result)
    heatmap, markers, points = figure.data
    order = result.order
    np.testing.assert_allclose(np.asarray(heatmap.z, dtype=float), result.class_means[order])
    assert list(heatmap.y) == [f"unit {unit}" for unit in order]
    assert list(heatmap.x) == CLASS_NAMES
    np.testing.assert_allclose(np.asarray(points.x, dtype=float), result.selectivity[order])
    np.testing.assert_allclose(
        np.asarray(points.error_x.array), result.selectivity_ci[order, 1] - result.selectivity[order]
    )
    np.testing.assert_allclose(
        np.asarray(points.error_x.arrayminus), result.selectivity[order] - result.selectivity_ci[order, 0]
    )
    assert list(points.y) == list(heatmap.y)
    assert list(markers.x) == [CLASS_NAMES[int(result.preferred_class[unit])] for unit in order]
    # the planted preferences are what the markers show
    rows = {unit: row for row, unit in enumerate(order)}
    assert (
        markers.x[rows[2]] == "automobile"
        and markers.x[rows[5]] == "cat"
        and markers.x[rows[7]] == "airplane"
    )


def test_meta_and_title_record_the_settings_with_steps_counted_from_1() -> None:
    result = result_of(ordering="selectivity")
    figure = plot_unit_selectivity(result)
    meta = figure.layout.meta
    assert meta["quantity"] == "lstm.hidden"
    assert (meta["step"], meta["step_number"]) == (2, 3)
    assert (meta["images"], meta["bootstrap"], meta["seed"], meta["ordering"]) == (120, 50, 1, "selectivity")
    assert meta["units"] == result.order.tolist()
    assert meta["class_counts"] == [30, 30, 30, 30]
    assert meta["units"][:3] == sorted([2, 5, 7], key=lambda u: -result.selectivity[u])
    assert "step 3" in figure.layout.title.text and "from 1" in figure.layout.title.text
    assert "hidden state h" in figure.layout.title.text
    json.dumps(meta)  # JSON-friendly


def test_signed_values_centre_the_colours_at_0_and_a_gate_at_its_typical_value() -> None:
    signed = plot_unit_selectivity(result_of()).data[0]
    assert signed.zmid == 0 and signed.zmin == -signed.zmax
    gate = result_of(values_shift=10.0)  # all positive, like a gate
    heatmap = plot_unit_selectivity(gate).data[0]
    centre = float(np.nanmean(gate.class_means))
    assert heatmap.zmid == pytest.approx(centre)
    assert heatmap.zmax - centre == pytest.approx(centre - heatmap.zmin)
    assert heatmap.zmax == pytest.approx(np.nanmax(gate.class_means))


def test_max_units_keeps_the_most_selective_units_in_display_order() -> None:
    result = result_of()
    kept = shown_units(result, 3)
    assert sorted(kept.tolist()) == [2, 5, 7]
    assert kept.tolist() == [unit for unit in result.order if unit in (2, 5, 7)]
    figure = plot_unit_selectivity(result, max_units=3)
    np.testing.assert_allclose(np.asarray(figure.data[0].z, dtype=float), result.class_means[kept])


def test_an_empty_class_and_an_infinite_index_draw_as_gaps() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    values = np.stack([[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], [0.1, 0.5, 0.2, 0.9, 0.4, 0.3]], axis=1)
    result = unit_selectivity(values, labels, CLASS_NAMES, bootstrap=20)
    assert result.selectivity[0] == np.inf and result.empty_classes == ["cat"]
    figure = plot_unit_selectivity(result)
    row = result.order.tolist().index(0)
    assert np.isnan(np.asarray(figure.data[2].x, dtype=float)[row])
    assert figure.layout.meta["selectivity"][row] is None
    assert figure.layout.meta["empty_classes"] == ["cat"]
    json.loads(figure.to_json())


def test_the_figure_exports_with_its_numbers(tmp_path) -> None:
    result = result_of()
    figure = plot_unit_selectivity(result)
    path = export_figure(figure, tmp_path / "selectivity.json", data=figure_data(figure))
    assert json.loads(path.read_text())["layout"]["meta"]["step_number"] == 3
    assert (tmp_path / "selectivity.data.npz").is_file()
    with np.load(tmp_path / "selectivity.data.npz") as data:
        stored = [np.asarray(data[key], dtype=float) for key in data.files if key.endswith(".z")]
    np.testing.assert_allclose(stored[0], result.class_means[result.order])


@pytest.mark.slow  # starts Chrome: 3-12 s
def test_the_figure_draws_as_svg_at_two_columns(tmp_path, browser_path) -> None:
    figure = plot_unit_selectivity(result_of())
    path = export_figure(figure, tmp_path / "selectivity.svg")
    root = ElementTree.parse(path).getroot()
    assert root.get("width") == "7.16in"
    text = path.read_text()
    assert "unit 7" in text and "selectivity d′" in text
