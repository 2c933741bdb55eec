"""The Experiments page, run headless with AppTest against the tiny zoo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("streamlit")

from tests.app.test_app import charts, open_app, texts

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("checkpoint", "min_charts"), [("tiny-crmn", 3), ("tiny-renet", 1), ("tiny-rir", 1)])
def test_the_experiments_page_draws_intact_and_intervened_runs(
    zoo: Path, checkpoint: str, min_charts: int
) -> None:
    at = open_app("experiments", checkpoint)
    assert [title.value for title in at.title] == ["Experiments"]
    assert charts(at) >= min_charts
    assert not at.error, texts(at.error)
    assert "intact" in texts(at.markdown) and "intervened" in texts(at.markdown)
    assert at.get("download_button"), "every figure has download buttons"


def test_the_experiments_page_does_not_apply_to_a_plain_resnet(zoo: Path) -> None:
    at = open_app("experiments", "tiny-resnet")
    assert "does not apply" in texts(at.info) and "tiny-crmn" in texts(at.info)
    assert charts(at) == 0


def test_every_memory_experiment_runs_on_the_page(zoo: Path) -> None:
    at = open_app("experiments", "tiny-crmn")
    families = at.selectbox(key="exp_family").options
    assert len(families) == 5
    for family in families:
        at.selectbox(key="exp_family").set_value(family).run()
        assert not at.exception, (family, at.exception)
        assert not at.error, (family, texts(at.error))
        assert charts(at) >= 3, family


def _cifar10_available() -> bool:
    data = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
    return (data / "cifar10-jpeg.zip").is_file() or (data / "cifar10").is_dir()


@pytest.mark.skipif(not _cifar10_available(), reason="needs the CIFAR-10 test set")
def test_the_dataset_effect_table_runs_over_test_images(zoo: Path) -> None:
    at = open_app("experiments", "tiny-crmn")
    at.number_input(key="exp_effect_count").set_value(64).run()
    at.button(key="exp_effect_run").click().run()
    assert not at.exception, at.exception
    table = texts(at.markdown)
    assert "| intact |" in table and "| memory off (h_T = 0) |" in table and "| 64 |" in table
    # the progress bar of the passes is gone once they are done; a rerun answers from the cache
    import crmn_viz.models.base as model_base

    calls = []
    original = model_base.TracedModel.__call__

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args, **kwargs)

    model_base.TracedModel.__call__ = counted  # type: ignore[method-assign]
    try:
        at.run()
    finally:
        model_base.TracedModel.__call__ = original  # type: ignore[method-assign]
    assert not at.exception, at.exception
    assert "| intact |" in texts(at.markdown)
    assert not calls, f"the rerun ran the network {len(calls)} times"
    assert not [bar for bar in at.get("progress") if bar.value < 1.0]
