"""The shipped zoo: every card is valid, loads, and its model is really trained."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crmn_viz import list_checkpoints, load
from crmn_viz.training import evaluate_model

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
ZOO = [entry["name"] for entry in list_checkpoints(REPO / "checkpoints")]


def mean_shape_nme(root: Path, num_test: int) -> float:
    """NME on the first ``num_test`` test crops of always predicting the mean training shape
    (crop coordinates from the keypoints alone, no images decoded): the bar a keypoint model
    must clear to be using the image at all."""
    import torch

    from crmn_viz.analysis.keypoint_evaluation import normalised_mean_errors
    from crmn_viz.data import read_keypoint_csv
    from crmn_viz.data.face_geometry import apply_affine, face_box_from_keypoints, image_to_normalized_matrix

    def crop_points(split: str) -> torch.Tensor:
        _, keypoints = read_keypoint_csv(root / f"{split}.csv")
        return torch.stack(
            [
                apply_affine(points.double(), image_to_normalized_matrix(face_box_from_keypoints(points)))
                for points in keypoints
            ]
        )

    mean_shape = crop_points("train").mean(dim=0)
    test = crop_points("test")[:num_test]
    return normalised_mean_errors(mean_shape.expand_as(test), test).mean().item()


def test_zoo_is_listed_and_small():
    assert len(ZOO) == len(list((REPO / "checkpoints").glob("*.json"))), "every card must validate"
    total = sum(p.stat().st_size for p in (REPO / "checkpoints").glob("*.safetensors"))
    assert total < 80e6, f"the zoo must stay under 80 MB, is {total / 1e6:.1f} MB"


@pytest.mark.parametrize("name", ZOO)
def test_each_card_records_how_it_was_made(name):
    card = load(REPO / "checkpoints" / name, device="cpu").card
    for field in ("dataset", "metrics", "training", "normalization", "package_version"):
        assert field in card, f"{name}: card lacks {field}"
    for field in ("command", "epochs", "wall_time_s", "hardware"):
        assert field in card["training"], f"{name}: training record lacks {field}"


@pytest.mark.parametrize("name", ZOO)
def test_card_recipe_is_the_recipe_in_configs(name):
    """``crmn-viz train configs/<name>.toml`` must re-make the shipped model: the recipe the card
    records (after command-line overrides) equals the file's. Keys a card lacks predate that
    option, and the option's default is what ran."""
    import dataclasses

    from crmn_viz.training import TrainRecipe, load_recipe

    recorded = load(REPO / "checkpoints" / name, device="cpu").card["training"]["recipe"]
    defaults = dataclasses.asdict(TrainRecipe(name=name, arch="", dataset=""))
    config = dataclasses.asdict(load_recipe(REPO / "configs" / f"{name}.toml"))
    differences = {
        key: (recorded.get(key, defaults[key]), value)
        for key, value in config.items()
        if recorded.get(key, defaults[key]) != value
    }
    assert not differences, f"{name}: card vs configs/{name}.toml differ in (card, file) {differences}"


@pytest.mark.parametrize("name", ZOO)
def test_shipped_model_is_trained_on_a_sample_of_its_test_set(name):
    model = load(REPO / "checkpoints" / name, device="cpu")
    dataset = model.card["dataset"]
    if not SHARED.exists():
        pytest.skip("shared data not found")
    metrics = evaluate_model(model, dataset, "test", str(SHARED), batch_size=128, max_batches=2)
    if model.task == "keypoints":
        # an untrained head is around 0.6; predicting the training set's mean shape ~0.20
        assert metrics["nme_crop"] < 0.9 * mean_shape_nme(SHARED / "faces68", metrics["num_images"])
    else:
        assert metrics["accuracy"] > 0.5  # chance is 0.1 on CIFAR-10 and MNIST


@pytest.mark.parametrize("name", ZOO)
def test_shipped_training_log_belongs_to_the_shipped_model(name):
    """``docs/training-logs/<name>.jsonl`` is the run's ``metrics.jsonl`` (one line per epoch,
    written by ``crmn-viz train``): it covers every epoch on the card once, in order, and its last
    test metric is the card's, up to the half-precision storage of the shipped weights."""
    import json

    card = load(REPO / "checkpoints" / name, device="cpu").card
    log = REPO / "docs" / "training-logs" / f"{name}.jsonl"
    epochs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [epoch["epoch"] for epoch in epochs] == list(range(1, card["training"]["epochs"] + 1))
    last = epochs[-1]
    metric = "test_nme_crop" if card["task"] == "keypoints" else "test_accuracy"
    assert last[metric] == pytest.approx(card["metrics"][metric], abs=5e-4)
    assert last["test_num_images"] == card["metrics"]["test_num_images"]
