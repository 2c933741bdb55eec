"""The selectivity view: it reads a population table (never runs the network) and names, captions
and records its figure; the Markdown table lists the most selective units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crmn_viz
from crmn_viz.analysis.selectivity import unit_selectivity
from crmn_viz.preprocessing import Preprocessor
from crmn_viz.views.population import selectivity_markdown, selectivity_view
from tests.conftest import tiny_model

CLASS_NAMES = ["a", "b", "c", "d", "e"]


class Quantity:
    def __init__(self, units: list[int]) -> None:
        self.units = units


class TracedTable:
    """A population table of ``lstm.<quantity>`` recorded by ``run_with_trace`` (the attributes
    :func:`crmn_viz.analysis.selectivity.selectivity_from_table` reads)."""

    def __init__(self, model: crmn_viz.TracedModel, images: torch.Tensor, labels: np.ndarray) -> None:
        with torch.no_grad():
            _, trace = model.run_with_trace(images, names=["lstm.hidden", "lstm.forget_gate"])
        self._values = {name: trace[name].numpy() for name in ("lstm.hidden", "lstm.forget_gate")}
        steps, units = self._values["lstm.hidden"].shape[1:]
        self.quantities = {name: Quantity([units] * steps) for name in self._values}
        self.labels = labels
        self.class_names = CLASS_NAMES
        self.image_names = [f"test/{k:04d}.png" for k in range(len(labels))]
        self.dataset = "synthetic"

    def values(self, quantity: str) -> np.ndarray:
        return self._values[quantity]


@pytest.fixture(scope="module")
def model_and_table() -> tuple[crmn_viz.TracedModel, TracedTable]:
    torch.manual_seed(0)
    model = tiny_model("crmn", num_outputs=5)
    generator = torch.Generator().manual_seed(0)
    labels = np.repeat(np.arange(5), 12)
    images = (
        torch.randn(60, *model.input_shape, generator=generator)
        + torch.from_numpy(labels).float()[:, None, None, None] * 0.5
    )
    labels[:3] = -1  # unknown labels are dropped
    return model, TracedTable(model, images, labels)


def test_the_view_reads_the_table_and_does_not_run_the_network(model_and_table, monkeypatch) -> None:
    model, table = model_and_table

    def refuse(*args, **kwargs):
        raise AssertionError("the view ran the network")

    monkeypatch.setattr(model, "forward", refuse)
    monkeypatch.setattr(model, "run_with_trace", refuse)
    result, shown = selectivity_view(model, table, "lstm.hidden", 3, bootstrap=40)
    expected = unit_selectivity(
        table.values("lstm.hidden")[:, 3], table.labels, CLASS_NAMES, step=3, bootstrap=40, seed=0
    )
    np.testing.assert_allclose(result.selectivity, expected.selectivity)
    np.testing.assert_allclose(result.selectivity_ci, expected.selectivity_ci)
    assert result.count == 57
    assert shown.name == "unit_selectivity_hidden_step4"
    assert shown.images == ()
    assert dict(shown.settings) == {
        "quantity": "lstm.hidden",
        "step": 3,
        "step_number": 4,
        "images": 57,
        "bootstrap": 40,
        "seed": 0,
        "ordering": "cluster",
        "dataset": "synthetic",
    }
    top_unit, top_class, _ = result.most_selective(1)[0]
    assert f"unit {top_unit} ({top_class}" in shown.caption
    assert "step 4" in shown.caption and "57 synthetic test images" in shown.caption
    np.testing.assert_allclose(
        np.asarray(shown.figure.data[0].z, dtype=float), result.class_means[result.order]
    )
    assert dict(shown.provenance(model).settings)["step_number"] == 4


def test_the_ordering_setting_reaches_the_result(model_and_table) -> None:
    model, table = model_and_table
    result, shown = selectivity_view(
        model, table, "lstm.forget_gate", 0, ordering="selectivity", bootstrap=10
    )
    index = np.where(np.isnan(result.selectivity), -np.inf, result.selectivity)
    assert (np.diff(index[result.order]) <= 0).all()
    assert shown.settings["ordering"] == "selectivity"
    assert shown.name == "unit_selectivity_forget_gate_step1"


def test_the_markdown_lists_the_most_selective_units(model_and_table) -> None:
    _, table = model_and_table
    result, _ = selectivity_view(None, table, "lstm.hidden", 5, bootstrap=20)  # type: ignore[arg-type]
    lines = selectivity_markdown(result, k=3).splitlines()
    assert len(lines) == 2 + 3
    for line, (unit, name, value) in zip(lines[2:], result.most_selective(3)):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == str(unit) and cells[1] == name
        assert cells[2].startswith(f"{value:.2f} (")
        preferred = int(result.preferred_class[unit])
        rest = np.delete(result.class_means[unit], preferred).mean()
        assert float(cells[3]) == pytest.approx(result.class_means[unit, preferred], abs=5e-4)
        assert float(cells[4]) == pytest.approx(rest, abs=5e-4)


def test_test_images_are_renormalised_to_a_card_with_other_statistics() -> None:
    """A model whose card states other statistics than the data set's gets its own normalisation."""
    import torch

    from crmn_viz.data import DatasetNotFoundError, dataset_info
    from crmn_viz.views.test_images import Renormalised, for_model, test_subset

    try:
        subset = test_subset("cifar10", 4)
    except DatasetNotFoundError:
        pytest.skip("CIFAR-10 is not on this machine")
    info = dataset_info("cifar10")
    model = tiny_model("crmn")
    model.preprocess = Preprocessor((32, 32), 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    moved = for_model(subset, "cifar10", model)
    assert isinstance(moved, Renormalised)
    image, label = subset[1]
    std, mean = torch.tensor(info.std)[:, None, None], torch.tensor(info.mean)[:, None, None]
    pixels = torch.as_tensor(image) * std + mean
    expected = (pixels - 0.5) / 0.25  # what the model's own preprocessor makes of the same pixels
    torch.testing.assert_close(moved[1][0], expected, atol=1e-5, rtol=0)
    assert moved[1][1] == label
    model.preprocess = Preprocessor((32, 32), 3, tuple(info.mean), tuple(info.std))
    assert for_model(subset, "cifar10", model) is subset
