"""The Gradio "Experiments" tab: the same views as the Streamlit page, for one image."""

from __future__ import annotations

import gradio as gr
import plotly.graph_objects as go
import pytest

from crmn_viz.frontends import gradio_app
from tests.gradio.test_gradio_app import cifar_image, zoo  # noqa: F401  (fixtures)


@pytest.mark.parametrize("choice", list(gradio_app.EXPERIMENT_CHOICES))
def test_the_experiment_handler_shows_intact_and_intervened(zoo, cifar_image, choice):  # noqa: F811
    text, readout, cells = gradio_app.experiment_handler(cifar_image, "crmn-tiny", choice, 2)
    assert "intact" in text and "intervened" in text
    assert isinstance(readout, go.Figure) and isinstance(cells, go.Figure)
    assert [trace.name for trace in cells.data] == ["intact", "intervened", "difference"]
    changed = cells.layout.meta["max_abs_difference"]
    if choice == "memory_off":  # only h_T is edited: no cell state changes
        assert changed == 0.0
    else:  # every other experiment edits the cell from block 2 on
        assert changed > 0.0


def test_the_experiment_handler_refuses_what_does_not_apply(zoo, cifar_image):  # noqa: F811
    with pytest.raises(gr.Error, match="blocks 0..5"):
        gradio_app.experiment_handler(cifar_image, "crmn-tiny", "skip_block", 99)
    with pytest.raises(gr.Error, match="need a CRMN"):
        gradio_app.experiment_handler(cifar_image, "renet-tiny", "memory_off", 0)
    with pytest.raises(gr.Error, match="Choose one of"):
        gradio_app.experiment_handler(cifar_image, "crmn-tiny", "explode", 0)


def test_the_experiment_files_carry_the_settings(zoo, cifar_image):  # noqa: F811
    import zipfile

    path = gradio_app.experiment_files_handler(cifar_image, "crmn-tiny", "skip_block", 3)
    with zipfile.ZipFile(path) as bundle:
        names = bundle.namelist()
        meta = [name for name in names if name.endswith(".meta.json")]
        assert meta and '"experiment": "skip_block"' in bundle.read(meta[0]).decode()
