"""The Population and CRMN-vs-ResNet pages, run headless with AppTest.

The population pass runs over real CIFAR-10 test images (the tiny zoo's CRMN reads them) and is
kept in a temporary cache folder; what the pages show is checked against the core library's own
answers for the same pass (exemplars, selectivity), and the buttons that send a unit or an image
to the other pages are followed there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from crmn_viz.data import DatasetNotFoundError, build_dataset

APP = str(Path(__file__).resolve().parents[2] / "app.py")
COUNT = 100


@pytest.fixture
def population_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CRMN_VIZ_CACHE_DIR", str(tmp_path / "cache"))
    try:
        build_dataset("cifar10", "test")
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 is not on this machine")
    return tmp_path / "cache"


def population_page(checkpoint: str = "tiny-crmn") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=240).run()
    at.switch_page("app_pages/population.py").run()
    at.sidebar.selectbox(key="zoo_choice").set_value(checkpoint).run()
    at.number_input(key="pop_count").set_value(COUNT).run()
    at.button(key="pop_go").click().run()
    assert not at.exception, at.exception
    return at


def test_population_page_shows_selectivity_and_sends_units_and_exemplars_on(
    zoo: Path, population_cache: Path
) -> None:
    import crmn_viz
    from crmn_viz.analysis.population import exemplars, test_set_population
    from crmn_viz.analysis.selectivity import selectivity_from_table

    at = population_page()
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1  # the selectivity figure
    table = test_set_population(crmn_viz.load(zoo / "tiny-crmn"), "cifar10", COUNT)
    steps = table.quantities["hidden"].steps
    expected = selectivity_from_table(table, "hidden", steps - 1, bootstrap=1000)
    top = expected.most_selective(1)[0][0]
    assert f"pop_ex_{top}" in [button.key for button in at.button]

    at.button(key=f"pop_ex_{top}").click().run()  # -> the Exemplars tab, at that unit and step
    assert not at.exception, at.exception
    assert at.session_state["pop_tab"] == "Exemplars"
    captions = [caption for element in at.get("image") for caption in element.captions]
    rows = exemplars(table, "hidden", steps - 1, top, 8)
    assert [caption.split(" · ")[0] for caption in captions[:8]] == [
        row.image.removeprefix("test/") for row in rows
    ]

    at.button(key="pop_use_0").click().run()  # this exemplar goes to every page
    assert not at.exception, at.exception
    picked = at.session_state["selection"].images
    assert [image.name for image in picked] == [rows[0].image]
    assert picked[0].source == "dataset"


def test_show_units_on_the_lstm_page(zoo: Path, population_cache: Path) -> None:
    at = population_page()
    focus = next(button for button in at.button if button.key == "pop_focus")
    focus.click().run()
    asked = list(at.session_state["focus_units"])
    at.switch_page("app_pages/lstm_memory.py").run()
    assert not at.exception, at.exception
    assert at.session_state["lstm_units_mode"] == "Pick"
    assert list(at.session_state["lstm_units_pick"]) == asked


def test_population_page_linear_probes(zoo: Path, population_cache: Path) -> None:
    at = population_page()
    at.segmented_control(key="pop_tab").set_value("Linear probes").run()
    at.number_input(key="pop_train").set_value(200).run()
    at.button(key="pop_probe_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert "chance" in markdown.lower()


def test_compare_page_without_pairs_says_so(zoo: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert "no matched pair" in " ".join(str(info.value) for info in at.info)


def test_compare_page_runs_a_zoo_pair(population_cache: Path) -> None:
    from crmn_viz.analysis.comparison import test_set_comparison, zoo_pairs

    at = AppTest.from_file(APP, default_timeout=300).run()
    at.switch_page("app_pages/compare.py").run()
    at.number_input(key="cmp_count").set_value(COUNT).run()
    at.button(key="cmp_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    pair = zoo_pairs()[at.selectbox(key="cmp_pair").value]
    import crmn_viz

    expected = test_set_comparison(crmn_viz.load(pair.name_a), crmn_viz.load(pair.name_b), "cifar10", COUNT)
    markdown = " ".join(str(m.value) for m in at.markdown)
    assert f"{100 * expected.accuracy_a:.1f}" in markdown
    assert len(at.get("plotly_chart")) >= 4  # training curves + the comparison figures
    assert np.isfinite(expected.agreement)
