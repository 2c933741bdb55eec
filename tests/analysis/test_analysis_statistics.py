"""gate_statistics(): streaming per-step, per-unit moments of the CRMN's LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from crmn_viz.analysis import GATE_QUANTITIES, RunningMoments, gate_statistics
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input


def direct_moments(model, images: torch.Tensor, quantity: str) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """numpy mean/std over the stacked full traces of all images at once."""
    with torch.no_grad():
        _, trace = model.run_with_trace(images)
    values = trace[f"lstm.{quantity}"].double().numpy()
    return values.mean(axis=0), values.std(axis=0)


def test_running_moments_match_numpy_over_uneven_chunks() -> None:
    values = np.random.default_rng(0).normal(3.0, 2.0, size=(23, 4, 5))
    moments = RunningMoments((4, 5))
    for chunk in np.array_split(values, [1, 2, 9, 9, 20]):
        moments.update(torch.from_numpy(chunk))
    assert moments.count == 23
    np.testing.assert_allclose(moments.mean.numpy(), values.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.std().numpy(), values.std(axis=0), rtol=1e-10)
    np.testing.assert_allclose(moments.std(ddof=1).numpy(), values.std(axis=0, ddof=1), rtol=1e-10)


def test_overall_and_predicted_class_statistics_match_a_direct_computation() -> None:
    model = tiny_analysis_model("crmn")
    images = random_input(model, 11)
    stats = gate_statistics(model, images, batch_size=4, progress=False)
    assert stats.count == 11 and stats.label_source == "predicted" and stats.quantities == GATE_QUANTITIES
    for quantity in GATE_QUANTITIES:
        mean, std = direct_moments(model, images, quantity)
        assert stats.mean(quantity).shape == (model.num_steps, 6)
        np.testing.assert_allclose(stats.mean(quantity), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.std(quantity), std, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        predicted = model(images).argmax(-1)
    assert sorted(stats.per_class) == sorted(predicted.unique().tolist())
    for class_index, table in stats.per_class.items():
        members = images[predicted == class_index]
        assert table.count == len(members)
        mean, std = direct_moments(model, members, "forget_gate")
        np.testing.assert_allclose(stats.mean("forget_gate", class_index), mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats.std("forget_gate", class_index), std, rtol=1e-5, atol=1e-6)


def test_true_labels_from_a_dataset_and_from_a_loader() -> None:
    model = tiny_analysis_model("crmn")
    images = random_input(model, 10)
    labels = torch.tensor([0, 1, 1, 3, 0, 1, 3, 3, 3, 1])
    dataset = TensorDataset(images, labels)
    from_dataset = gate_statistics(
        model, dataset, batch_size=3, progress=False, quantities=("cell", "hidden")
    )
    from_loader = gate_statistics(
        model, DataLoader(dataset, batch_size=4), progress=False, quantities=("cell", "hidden")
    )
    from_pair = gate_statistics(model, (images, labels), progress=False, quantities=("cell", "hidden"))
    for stats in (from_dataset, from_loader, from_pair):
        assert stats.label_source == "true" and sorted(stats.per_class) == [0, 1, 3]
        for class_index in (0, 1, 3):
            mean, std = direct_moments(model, images[labels == class_index], "cell")
            np.testing.assert_allclose(stats.mean("cell", class_index), mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(stats.std("cell", class_index), std, rtol=1e-5, atol=1e-6)
        assert stats.per_class[3].count == 4
    with pytest.raises(KeyError, match="classes seen"):
        from_dataset.mean("cell", 2)


def test_pil_dataset_max_images_and_no_grouping() -> None:
    model = tiny_analysis_model("crmn")
    rng = np.random.default_rng(0)
    photos = [Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)) for _ in range(7)]
    items = [(photo, k % 2) for k, photo in enumerate(photos)]
    stats = gate_statistics(model, items, batch_size=2, max_images=5, progress=False)
    assert stats.count == 5 and stats.per_class[0].count == 3 and stats.per_class[1].count == 2
    plain = gate_statistics(model, photos, by_class=False, progress=False)
    assert plain.count == 7 and plain.per_class == {} and plain.label_source == "none"


def test_records_only_the_lstm_quantities_it_needs_and_shows_progress(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    model = tiny_analysis_model("crmn")
    requested: list[list[str]] = []
    original = model.run_with_trace

    def spy(x, names=None, store_device=None):  # type: ignore[no-untyped-def]
        requested.append(list(names))
        assert not torch.is_grad_enabled()
        return original(x, names=names, store_device=store_device)

    monkeypatch.setattr(model, "run_with_trace", spy)
    gate_statistics(model, random_input(model, 5), batch_size=2, progress=True, quantities=("forget_gate",))
    assert requested == [["lstm.forget_gate"]] * 3
    assert "gate statistics" in capsys.readouterr().err


def test_keypoint_model_and_refusals() -> None:
    keypoints = tiny_keypoint_crmn()
    stats = gate_statistics(keypoints, torch.randn(3, 3, 32, 32), progress=False)
    assert stats.label_source == "none" and stats.per_class == {} and stats.class_names == []
    resnet = tiny_analysis_model("resnet")
    with pytest.raises(TypeError, match="needs a CRMN"):
        gate_statistics(resnet, random_input(resnet, 2), progress=False)
    crmn = tiny_analysis_model("crmn")
    with pytest.raises(ValueError, match="unknown quantities"):
        gate_statistics(crmn, random_input(crmn, 2), quantities=("forget",), progress=False)
    with pytest.raises(ValueError, match="class labels"):
        gate_statistics(crmn, TensorDataset(random_input(crmn, 2), torch.tensor([0, 7])), progress=False)
