"""The population pass: values, exemplars, class sums and the disk cache against independent
expectations (traces of one image at a time, numpy sums and argsorts, brute-force distances)."""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from crmn_viz.analysis import population
from crmn_viz.analysis.population import (
    exemplars,
    nearest_trajectories,
    population_cache_dir,
    population_pass,
    population_quantities,
)
from crmn_viz.data import build_dataset
from tests.analysis.conftest import tiny_analysis_model
from tests.conftest import DEVELOPMENT_DATA_DIR

IMAGES = 24


def _images(model, count: int = IMAGES, seed: int = 3) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return torch.randn(count, *model.input_shape, generator=torch.Generator().manual_seed(seed))


def _labels(count: int = IMAGES, classes: int = 5) -> torch.Tensor:
    return torch.arange(count) % classes


def _traced_one_by_one(model, images: torch.Tensor, name: str) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    """The trace ``name`` of each image, run alone."""
    with torch.no_grad():
        return [model.run_with_trace(image[None], names=[name])[1][name][0] for image in images]


def _expected_lstm(model, images: torch.Tensor, quantity: str) -> np.ndarray:  # type: ignore[no-untyped-def]
    """[N, T, H] straight from ``lstm.<quantity>``, image by image."""
    return torch.stack(_traced_one_by_one(model, images, f"lstm.{quantity}")).numpy()


def _expected_channel_means(model, images: torch.Tensor, pattern: str, steps: int) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Per step, [N, C_t]: the mean over rows and columns of each channel of the trace."""
    return [
        torch.stack(
            [m.mean(dim=(1, 2)) for m in _traced_one_by_one(model, images, pattern.format(t))]
        ).numpy()
        for t in range(steps)
    ]


def _argsort_exemplars(column: np.ndarray, k: int, lowest: bool) -> list[int]:
    """Indices by value (descending, or ascending), ties by the lower index: a plain numpy sort."""
    order = sorted(range(len(column)), key=lambda i: (column[i] if lowest else -column[i], i))
    return order[:k]


@pytest.mark.parametrize("arch", ["crmn", "resnet", "renet", "rir"])
def test_quantities_match_the_trace_names_and_shapes(arch: str) -> None:
    model = tiny_analysis_model(arch)
    with torch.no_grad():
        _, trace = model.run_with_trace(torch.zeros(1, *model.input_shape))
    names = model.trace_names()
    expected: dict[str, list[str]] = {}
    for name in names:  # every family of names that differ only by their step number
        if match := re.fullmatch(r"lstm\.(\w+)", name):
            if match.group(1) != "input":
                expected[match.group(1)] = [name]
        elif match := re.fullmatch(r"blocks\.\d+\.(\w+)", name):
            expected.setdefault("block" if match.group(1) == "out" else match.group(1), []).append(name)
        elif re.fullmatch(r"layers\.\d+\.out", name):
            expected.setdefault("block", []).append(name)
        elif match := re.fullmatch(r"layers\.\d+\.(?:gates\.)?([\w.]+)", name):
            expected.setdefault(match.group(1), []).append(name)
    quantities = population_quantities(model)
    assert set(quantities) == set(expected)
    for name, quantity in quantities.items():
        assert list(quantity.trace_names) == expected[name]
        if name in model.memory_quantities:
            steps, units = trace[f"lstm.{name}"].shape[1:]
            assert quantity.stacked and quantity.steps == steps and quantity.units == (units,) * steps
        else:
            assert quantity.steps == len(expected[name])
            assert quantity.units == tuple(trace[n].shape[1] for n in expected[name])
        assert quantity.description
    assert "input" not in quantities


def test_crmn_values_and_exemplars_match_traces_of_single_images() -> None:
    model = tiny_analysis_model("crmn")
    images, labels = _images(model), _labels()
    table = population_pass(model, (images, labels), batch_size=7, top_k=5)
    forget = _expected_lstm(model, images, "forget_gate")
    np.testing.assert_allclose(table.values("forget_gate"), forget, atol=1e-5, rtol=0)
    blocks = _expected_channel_means(model, images, "blocks.{}.out", model.block_count)
    block_values = table.values("block")
    for step, expected in enumerate(blocks):
        np.testing.assert_allclose(block_values[:, step, : expected.shape[1]], expected, atol=1e-5, rtol=0)
        assert np.isnan(block_values[:, step, expected.shape[1] :]).all()  # a stage with fewer channels

    for quantity, step, unit, column in [
        ("forget_gate", 3, 2, forget[:, 3, 2]),
        ("block", 1, 3, blocks[1][:, 3]),
        ("block", 5, 15, blocks[5][:, 15]),
    ]:
        for lowest in (False, True):
            for k in (3, 5, IMAGES + 4):  # from the summary's top-5, and from the values
                got = exemplars(table, quantity, step, unit, k, lowest=lowest)
                assert [e.index for e in got] == _argsort_exemplars(column, k, lowest)
                np.testing.assert_allclose([e.value for e in got], column[[e.index for e in got]], atol=1e-5)
                assert [e.label for e in got] == labels[[e.index for e in got]].tolist()
                assert [e.image for e in got] == [f"image {e.index}" for e in got]
    np.testing.assert_array_equal(table.labels, labels.numpy())
    with torch.no_grad():
        np.testing.assert_allclose(table.outputs, model(images).numpy(), atol=1e-5)


def test_renet_sweep_channel_exemplars_match_traces_of_single_images() -> None:
    model = tiny_analysis_model("renet")
    images = _images(model)
    table = population_pass(model, images, batch_size=5, top_k=4)
    sweep = _expected_channel_means(model, images, "layers.{}.vertical_fwd", 2)
    gate = _expected_channel_means(model, images, "layers.{}.gates.horizontal_bwd.update_gate", 2)
    for quantity, expected in (("vertical_fwd", sweep), ("horizontal_bwd.update_gate", gate)):
        for step in range(2):
            units = expected[step].shape[1]
            np.testing.assert_allclose(table.values(quantity)[:, step, :units], expected[step], atol=1e-5)
    for lowest in (False, True):
        got = exemplars(table, "vertical_fwd", 1, 2, 4, lowest=lowest)
        assert [e.index for e in got] == _argsort_exemplars(sweep[1][:, 2], 4, lowest)
        assert all(e.label == -1 for e in got)  # unlabelled images
    # the summary's top-k equals a full argsort of the stored values at every cell
    values, quantity = (
        table.values("horizontal_bwd.update_gate"),
        table.quantities["horizontal_bwd.update_gate"],
    )
    for step in range(quantity.steps):
        for unit in range(quantity.units[step]):
            top = table.summary.top_indices["horizontal_bwd.update_gate"][step, unit]
            assert top.tolist() == _argsort_exemplars(values[:, step, unit], 4, lowest=False)


def test_class_sums_equal_numpy_sums_per_label() -> None:
    model = tiny_analysis_model("crmn")
    images, labels = _images(model, 30), _labels(30)
    table = population_pass(model, (images, labels), batch_size=8, top_k=3)
    summary = table.summary
    np.testing.assert_array_equal(summary.class_counts, np.bincount(labels.numpy(), minlength=5))
    cell = _expected_lstm(model, images, "cell").astype(np.float64)
    for label in range(5):
        members = cell[labels.numpy() == label]
        np.testing.assert_allclose(summary.class_sums["cell"][label], members.sum(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            summary.class_sum_squares["cell"][label], (members**2).sum(0), rtol=1e-5, atol=1e-5
        )
    # exactly the float64 sums of the stored float32 values, NaN where a step lacks the unit
    blocks = np.asarray(table.values("block"), dtype=np.float64)
    for label in range(5):
        np.testing.assert_allclose(
            summary.class_sums["block"][label], blocks[labels.numpy() == label].sum(0), rtol=1e-12
        )
    np.testing.assert_allclose(summary.class_means("cell")[2], cell[labels.numpy() == 2].mean(0), atol=1e-5)
    np.testing.assert_allclose(
        summary.class_variances("cell")[2], cell[labels.numpy() == 2].var(0), atol=1e-5
    )


def test_unlabelled_images_are_grouped_by_predicted_class() -> None:
    model = tiny_analysis_model("crmn")
    images = _images(model, 20)
    table = population_pass(model, images, batch_size=6)
    predicted = table.predictions
    with torch.no_grad():
        np.testing.assert_array_equal(predicted, model(images).argmax(1).numpy())
    np.testing.assert_array_equal(table.summary.class_counts, np.bincount(predicted, minlength=5))
    hidden = np.asarray(table.values("hidden"), dtype=np.float64)
    for label in set(predicted.tolist()):
        np.testing.assert_allclose(
            table.summary.class_sums["hidden"][label], hidden[predicted == label].sum(0)
        )


def test_keypoint_models_have_one_group() -> None:
    from tests.analysis.conftest import tiny_keypoint_crmn

    model = tiny_keypoint_crmn()
    table = population_pass(model, _images(model, 6), batch_size=4, top_k=2)
    assert table.class_names == [population.ALL_IMAGES_CLASS]
    assert table.summary.class_counts.tolist() == [6]
    assert table.outputs.shape == (6, 2 * 68)
    with pytest.raises(ValueError, match="no classes"):
        _ = table.predictions


def test_nearest_trajectories_equal_a_brute_force_ranking() -> None:
    model = tiny_analysis_model("crmn")
    table = population_pass(model, _images(model, 40), batch_size=16)
    forget = np.asarray(table.values("forget_gate"), dtype=np.float64)
    for query, units in [(7, None), (0, [1, 4]), (39, [5])]:
        chosen = list(range(forget.shape[2])) if units is None else units
        distances = [
            np.linalg.norm((forget[i][:, chosen] - forget[query][:, chosen]).ravel()) for i in range(40)
        ]
        expected = sorted((i for i in range(40) if i != query), key=lambda i: (distances[i], i))[:6]
        got = nearest_trajectories(table, "forget_gate", query, 6, units=units)
        assert [index for index, _, _ in got] == expected
        np.testing.assert_allclose([d for _, _, d in got], [distances[i] for i in expected], rtol=1e-9)
    # a given trajectory [T, U]; the block quantity's missing channels are left out
    blocks = np.asarray(table.values("block"), dtype=np.float64)
    target = np.nan_to_num(blocks[3]) + 0.05
    distances = [np.sqrt(np.nansum((blocks[i] - target) ** 2)) for i in range(40)]
    got = nearest_trajectories(table, "block", target, 5)
    assert [index for index, _, _ in got] == sorted(range(40), key=lambda i: (distances[i], i))[:5]


def test_progress_is_reported_after_every_batch() -> None:
    model = tiny_analysis_model("resnet")
    calls: list[tuple[int, int]] = []
    population_pass(
        model, _images(model, 10), batch_size=4, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(4, 10), (8, 10), (10, 10)]


class _CountingForward:
    """Wraps a model's forward and counts the calls (each is one model run)."""

    def __init__(self, model) -> None:  # type: ignore[no-untyped-def]
        self.calls = 0
        self.forward = model.forward
        model.forward = self

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.forward(*args, **kwargs)


def test_the_disk_cache_answers_without_the_model_and_follows_the_weights(tmp_path: Path) -> None:
    model = tiny_analysis_model("crmn")
    images, labels = _images(model), _labels()
    first = population_pass(model, (images, labels), top_k=4, cache_dir=tmp_path, dataset="toy")
    assert first.directory is not None and first.directory.parent == tmp_path
    assert not list(tmp_path.glob(".partial-*"))  # the temporary folder was renamed
    counter = _CountingForward(model)
    again = population_pass(model, (images, labels), top_k=4, cache_dir=tmp_path, dataset="toy")
    assert counter.calls == 0
    assert isinstance(again.values("cell"), np.memmap)
    np.testing.assert_array_equal(again.values("cell"), first.values("cell"))
    np.testing.assert_array_equal(again.summary.top_indices["block"], first.summary.top_indices["block"])
    assert again.image_names == first.image_names and again.class_names == first.class_names

    # other weights: another key, a new pass
    with torch.no_grad():
        model.fc.bias.add_(1.0)
    changed = population_pass(model, (images, labels), top_k=4, cache_dir=tmp_path, dataset="toy")
    assert counter.calls > 0
    assert changed.directory != first.directory and changed.checkpoint_key != first.checkpoint_key
    assert not np.allclose(changed.outputs, first.outputs)
    # other images or another top_k: other keys
    assert (
        population_pass(model, (images, labels), top_k=3, cache_dir=tmp_path).directory != changed.directory
    )
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 3

    # every file of the cache is read without pickle
    for path in changed.directory.rglob("*.np[yz]"):
        loaded = np.load(path, allow_pickle=False)
        assert loaded is not None
    json.loads((changed.directory / "meta.json").read_text())


def test_a_truncated_cache_file_is_rebuilt(tmp_path: Path) -> None:
    model = tiny_analysis_model("resnet")
    images = _images(model)
    first = population_pass(model, images, cache_dir=tmp_path)
    expected = np.array(first.values("block"))
    path = first.directory / "values" / "block.npy"
    del first
    path.write_bytes(path.read_bytes()[:-100])
    counter = _CountingForward(model)
    rebuilt = population_pass(model, images, cache_dir=tmp_path)
    assert counter.calls > 0
    np.testing.assert_array_equal(rebuilt.values("block"), expected)
    (rebuilt.directory / "summary.npz").write_bytes(b"not a zip")
    calls = counter.calls
    population_pass(model, images, cache_dir=tmp_path)
    assert counter.calls > calls


def _traced_peak_bytes(model, count: int) -> tuple[int, population.PopulationTable]:  # type: ignore[no-untyped-def]
    images = _images(model, count)
    tracemalloc.start()
    try:
        table = population_pass(model, images, batch_size=100, keep_values=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, table


def test_values_are_memory_maps_and_memory_does_not_grow_with_the_images() -> None:
    model = tiny_analysis_model("crmn")
    quantities = population_quantities(model)
    bytes_per_image = sum(q.steps * q.max_units * 4 for q in quantities.values())  # 1248 here
    small_peak, _ = _traced_peak_bytes(model, 200)
    large_peak, table = _traced_peak_bytes(model, 1600)
    assert all(isinstance(table.values(name), np.memmap) for name in quantities)
    assert table.summary.count == 1600
    # Holding every value in memory (numpy allocations are traced) would add 1400 * 1248 bytes
    # = 1.7 MB; the pass adds the image names only (about 65 bytes an image).
    assert large_peak - small_peak < 0.2 * (1600 - 200) * bytes_per_image, (small_peak, large_peak)


def test_keep_values_false_keeps_the_summary_only() -> None:
    model = tiny_analysis_model("crmn")
    images = _images(model)
    table = population_pass(model, images, top_k=4, keep_values=False)
    with pytest.raises(ValueError, match="keep_values"):
        table.values("cell")
    with pytest.raises(ValueError, match="keep_values"):
        exemplars(table, "cell", 0, 0, 10)  # more than the summary kept
    column = _expected_lstm(model, images, "cell")[:, 2, 1]
    assert [e.index for e in exemplars(table, "cell", 2, 1, 4)] == _argsort_exemplars(column, 4, False)


def test_bad_queries_name_the_valid_range() -> None:
    model = tiny_analysis_model("crmn")
    table = population_pass(model, _images(model, 8), top_k=2)
    with pytest.raises(ValueError, match=r"unit must be in 0\.\.3"):
        exemplars(table, "block", 0, 4)  # the first stage has 4 channels
    with pytest.raises(ValueError, match=r"step must be in 0\.\.5"):
        exemplars(table, "cell", 6, 0)
    with pytest.raises(KeyError, match="forget_gate"):
        exemplars(table, "forgetgate", 0, 0)


def test_population_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRMN_VIZ_CACHE_DIR", str(tmp_path))
    assert population_cache_dir() == tmp_path / "populations"
    monkeypatch.delenv("CRMN_VIZ_CACHE_DIR")
    assert population_cache_dir() == Path.home() / ".cache" / "crmn-viz" / "populations"


def test_dataset_items_are_named_by_their_samples() -> None:
    model = tiny_analysis_model("resnet")
    images = _images(model, 6)

    class Named(TensorDataset):
        samples: ClassVar = [(f"test/class{i % 2}/{i:04d}.jpg", i % 2) for i in range(6)]

    table = population_pass(model, Subset(Named(images, _labels(6, 2)), [5, 1, 3]), batch_size=2)
    assert table.image_names == ["test/class1/0005.jpg", "test/class1/0001.jpg", "test/class1/0003.jpg"]
    assert table.labels.tolist() == [1, 1, 1]


@pytest.mark.slow  # about 13 s on a busy 2-core machine: the first read of the zip archive
@pytest.mark.skipif(
    not (DEVELOPMENT_DATA_DIR / "cifar10-jpeg.zip").is_file(),
    reason="cifar10-jpeg.zip not in the shared data",
)
def test_test_set_population_names_archive_members_and_caches(tmp_path: Path) -> None:
    model = tiny_analysis_model("crmn", input_size=32, num_outputs=10)
    table = population.test_set_population(model, "cifar10", 20, cache_dir=tmp_path, batch_size=10, top_k=3)
    full = build_dataset("cifar10", "test")
    chosen = [round(k * len(full) / 20) for k in range(20)]
    assert table.image_names == [full.samples[i][0] for i in chosen]
    assert table.labels.tolist() == [full.samples[i][1] for i in chosen]
    best = exemplars(table, "forget_gate", 2, 0, 3)
    assert all(re.fullmatch(r"test/[a-z]+/\d{4}\.jpg", e.image) for e in best)
    counter = _CountingForward(model)
    again = population.test_set_population(model, "cifar10", 20, cache_dir=tmp_path, batch_size=10, top_k=3)
    assert counter.calls == 0 and again.directory == table.directory
    meta = json.loads((table.directory / "meta.json").read_text())
    assert meta["fields"]["identity"]["archive"]["path"].endswith("cifar10-jpeg.zip")
