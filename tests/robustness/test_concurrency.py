"""Many sessions share one cached model: 8 threads at once give the one-at-a-time results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.analysis import attribute, classify
from crmn_viz.figures import browser_available, export_figure, plot_gate_heatmap
from tests.conftest import tiny_model

THREADS = 8


@pytest.fixture(scope="module")
def shared_model():
    torch.manual_seed(0)
    return tiny_model("crmn", num_outputs=10, input_size=32)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(THREADS)]


def no_hooks(model) -> bool:  # type: ignore[no-untyped-def]
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules()
    )


def test_parallel_traces_equal_sequential_traces(shared_model):
    inputs = [torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(THREADS)]

    def trace(x):
        with torch.no_grad():
            return shared_model.run_with_trace(x)[1]

    sequential = [trace(x) for x in inputs]
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(trace, inputs * 3))
    for index, result in enumerate(parallel):
        expected = sequential[index % THREADS]
        assert sorted(result) == sorted(expected)
        assert all(torch.equal(result[k], expected[k]) for k in result)
    assert no_hooks(shared_model)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "occlusion", "gradcam"])
def test_parallel_attributions_equal_sequential_ones(shared_model, images, method):
    options = {"n_steps": 16} if method == "integrated_gradients" else {}
    if method == "occlusion":
        options = {"window": 8, "stride": 8}

    def run(image):
        return attribute(shared_model, image, method, **options).map

    sequential = [run(image) for image in images]
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(run, images))
    for a, b in zip(parallel, sequential):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert no_hooks(shared_model) and not shared_model.training


def test_parallel_classification_equals_sequential(shared_model, images):
    sequential = [classify(shared_model, [image])[0] for image in images]
    with ThreadPoolExecutor(THREADS) as pool:
        parallel = list(pool.map(lambda image: classify(shared_model, [image])[0], images))
    assert parallel == sequential


@pytest.mark.skipif(not browser_available(), reason="Chrome/Chromium needed for static export")
def test_parallel_exports_write_valid_files(shared_model, tmp_path):
    with torch.no_grad():
        _, trace = shared_model.run_with_trace(torch.randn(1, 3, 32, 32))
    figure = plot_gate_heatmap(trace, "forget_gate")

    def export(index):
        return export_figure(figure, tmp_path / f"fig{index}.png", dpi=100)

    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(export, range(4)))
    sizes = {Image.open(p).size for p in paths}
    assert len(sizes) == 1 and next(iter(sizes))[0] == 350
