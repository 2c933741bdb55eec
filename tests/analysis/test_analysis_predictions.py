"""classify() and the input helpers shared by every analysis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import crmn_viz
from crmn_viz.analysis import (
    class_names_for,
    classify,
    evaluation_mode,
    prepare_batch,
    preprocessor_for,
)
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input


def random_photos(count: int, size: tuple[int, int] = (40, 30)) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(count)]


def test_created_model_gets_identity_normalisation_at_its_input_size() -> None:
    model = tiny_analysis_model("resnet")
    preprocess = preprocessor_for(model)
    assert preprocess.input_size == (16, 16) and preprocess.in_channels == 3
    assert preprocess.mean == (0.0, 0.0, 0.0) and preprocess.std == (1.0, 1.0, 1.0)
    batch = prepare_batch(model, random_photos(2))
    assert batch.shape == (2, 3, 16, 16) and float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0


def test_loaded_model_uses_its_card(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_analysis_model("resnet")
    names = ["cat", "dog", "frog", "ship", "truck"]
    normalization = {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3]}
    crmn_viz.save(model, tmp_path / "m", class_names=names, normalization=normalization)
    loaded = crmn_viz.load(tmp_path / "m", device="cpu")
    card_preprocess = loaded.preprocess
    assert preprocessor_for(loaded) is card_preprocess
    del loaded.preprocess  # a card alone is enough
    assert preprocessor_for(loaded).mean == (0.5, 0.4, 0.3)
    assert class_names_for(loaded) == names
    photos = random_photos(3)
    top = classify(loaded, photos, top_k=2)
    assert [len(row) for row in top] == [2, 2, 2]
    assert all(label in names for row in top for label, _ in row)
    assert classify(loaded, card_preprocess(photos), top_k=2) == top


def test_classify_ranks_softmax_probabilities_with_fallback_labels() -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 3)
    result = classify(model, x, top_k=10)  # capped at the 5 classes
    with torch.no_grad():
        probabilities = torch.softmax(model(x), dim=-1)
    for row, expected in zip(result, probabilities):
        assert len(row) == 5
        values = [p for _, p in row]
        assert values == sorted(values, reverse=True)
        assert sum(values) == pytest.approx(1.0, abs=1e-5)
        for label, p in row:
            assert label.startswith("class ")
            assert p == pytest.approx(float(expected[int(label.split()[1])]), abs=1e-6)
    (single,) = classify(model, x[0], top_k=1)[0]  # a single [C, H, W] image
    # a batch of one may take other convolution kernels than a batch of three: same to float precision
    assert single[0] == result[0][0][0] and single[1] == pytest.approx(result[0][0][1], rel=1e-5)


def test_classify_restores_training_mode_and_rejects_bad_calls() -> None:
    model = tiny_analysis_model("renet").train()
    result = classify(model, random_input(model, 1))
    assert model.training and all(m.training for m in model.modules())
    assert len(result[0]) == 5
    with pytest.raises(ValueError, match="classifier"):
        classify(tiny_keypoint_crmn(), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="top_k"):
        classify(model, random_input(model, 1), top_k=0)
    with pytest.raises(ValueError, match="channel"):
        classify(model, torch.zeros(1, 1, 9, 9))
    with pytest.raises(TypeError, match="PIL image"):
        classify(model, "cat.png")  # type: ignore[arg-type]


def test_classify_is_deterministic_in_eval_even_for_a_training_mode_renet() -> None:
    model = tiny_analysis_model("renet", dropout=0.5, input_dropout=0.5).train()
    x = random_input(model, 2)
    assert classify(model, x) == classify(model, x)


def test_evaluation_mode_restores_mixed_modes() -> None:
    model = tiny_analysis_model("resnet").train()
    model.blocks[0].eval()
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
    assert model.training and not model.blocks[0].training and model.blocks[1].training
