"""The Attributions page's "Can I trust this map?" section and many-images table, run with AppTest."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from tests.app.test_app import charts, open_app, texts


@pytest.mark.parametrize("checkpoint", ["tiny-crmn", "tiny-renet", "tiny-faces", "tiny-rir"])
def test_the_checks_draw_curves_and_the_randomisation_test(zoo: Path, checkpoint: str) -> None:
    at = open_app("attributions", checkpoint)
    before = charts(at)
    assert "Can I trust this map?" in [header.value for header in at.subheader]
    at.toggle(key="attr_trust_on").set_value(True).run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert charts(at) == before + 3  # two methods' curves and one randomisation figure
    at.segmented_control(key="attr_trust_mode").set_value("independent").run()
    assert not at.exception, at.exception
    assert charts(at) == before + 3


def test_the_table_over_the_gallery_names_the_most_faithful_method(zoo: Path) -> None:
    at = open_app("attributions", "tiny-crmn")
    at.multiselect(key="attr_tab_methods").set_value(["saliency", "gradcam"]).run()
    at.button(key="attr_tab_run").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    table = texts(at.markdown)
    assert "| Saliency (gradient)" in table and "| Grad-CAM" in table and "(most faithful)" in table
    # a display change elsewhere on the page keeps the table (it was asked for once)
    at.slider(key="attr_opacity").set_value(0.3).run()
    assert "(most faithful)" in texts(at.markdown)
