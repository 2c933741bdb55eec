"""Checkpoints: round trip, zoo lookup, and every way a file can be wrong or hostile."""

from __future__ import annotations

import json
import pickle
import struct

import pytest
import torch

import crmn_viz
from crmn_viz import CheckpointError, list_checkpoints, load, save
from tests.conftest import random_input, tiny_model

CARD = {
    "dataset": "cifar10",
    "class_names": ["a", "b", "c", "d", "e"],
    "normalization": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]},
    "metrics": {"test_accuracy": 0.5},
}


@pytest.mark.parametrize("arch", crmn_viz.list_architectures())
def test_save_load_round_trip_gives_identical_outputs(tmp_path, arch):
    model = tiny_model(arch)
    weights, card = save(model, tmp_path / f"{arch}-tiny", **CARD)
    assert weights.name == f"{arch}-tiny.safetensors" and card.name == f"{arch}-tiny.json"
    loaded = load(tmp_path / f"{arch}-tiny", device="cpu")
    assert not loaded.training
    x = random_input(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.card["class_names"] == CARD["class_names"]
    assert loaded.card["package_version"] == crmn_viz.__version__
    assert loaded.preprocess.mean == (0.5, 0.4, 0.3)
    assert loaded.preprocess.input_size == model.input_shape[1:]


def test_loaded_card_is_a_typed_read_only_model_card(tmp_path):
    from crmn_viz.checkpoints import ModelCard

    model = tiny_model("crmn")
    _, card_path = save(model, tmp_path / "m", **CARD)
    card = load(tmp_path / "m", device="cpu").card
    assert isinstance(card, ModelCard)
    assert (card.arch, card.task, card.dataset) == ("crmn", "classification", "cifar10")
    assert card.input_size == model.input_shape[1:] and card.in_channels == 3
    assert card.class_names == tuple(CARD["class_names"])
    assert card.normalization == {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)}
    assert card.metrics == {"test_accuracy": 0.5} and card.config == model.config.to_dict()
    assert card.weights_sha256 and card.training == {} and card.notes is None
    # the transition: a read-only mapping of the JSON, equal to the file's dict
    written = json.loads(card_path.read_text())
    assert card == written and dict(card) == written and card.to_dict() == written
    assert card["class_names"] == CARD["class_names"] and card.get("absent", 7) == 7
    with pytest.raises(TypeError):
        card["dataset"] = "mnist"  # type: ignore[index]
    with pytest.raises(AttributeError):
        card.dataset = "mnist"  # type: ignore[misc]


def test_a_skeleton_from_a_card_answers_capabilities_without_weights(tmp_path):
    from crmn_viz.checkpoints import build_skeleton

    save(tiny_model("renet"), tmp_path / "r", **CARD)
    (entry,) = list_checkpoints(tmp_path)
    skeleton = build_skeleton(entry)
    assert skeleton.sweep_names and not skeleton.has_memory
    assert {p.device.type for p in skeleton.parameters()} == {"meta"}
    with pytest.raises(CheckpointError, match="unknown architecture"):
        build_skeleton({"arch": "vgg", "config": {}})
    with pytest.raises(CheckpointError, match="invalid crmn config"):
        build_skeleton({"arch": "crmn", "config": {"depth": 7}})
    with pytest.raises(CheckpointError, match="above the limit"):
        build_skeleton({"arch": "crmn", "config": {"width": 1024, "depth": 1202, "hidden_size": 8192}})


def test_half_precision_storage_restores_float32(tmp_path):
    model = tiny_model("crmn")
    save(model, tmp_path / "half", half=True, **CARD)
    loaded = load(tmp_path / "half.safetensors", device="cpu")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = random_input(model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=5e-3, rtol=5e-3)


def test_auto_device_is_cpu_without_cuda(tmp_path):
    save(tiny_model("resnet"), tmp_path / "m", **CARD)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(load(tmp_path / "m").parameters()).device.type == expected


def test_list_checkpoints_and_lookup_by_zoo_name(tmp_path, monkeypatch):
    save(tiny_model("renet"), tmp_path / "renet-tiny", **CARD)
    (tmp_path / "broken.json").write_text("{")
    (tmp_path / "broken.safetensors").write_bytes(b"")
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(tmp_path))
    entries = list_checkpoints()
    assert [e["name"] for e in entries] == ["renet-tiny"]
    assert entries[0]["arch"] == "renet" and entries[0]["size_bytes"] > 0
    assert load("renet-tiny", device="cpu").arch == "renet"


@pytest.fixture
def saved(tmp_path):
    save(tiny_model("crmn"), tmp_path / "m", **CARD)
    return tmp_path / "m.safetensors", tmp_path / "m.json"


def test_pickle_files_are_refused_without_being_opened(tmp_path):
    evil = tmp_path / "model.pt"

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle was executed')",))

    evil.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="never loaded"):
        load(evil)


def test_pickle_bytes_renamed_to_safetensors_are_refused(saved):
    weights, _ = saved
    weights.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(CheckpointError, match="header"):
        load(weights)


def test_missing_files(tmp_path, saved):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "nothing")
    saved[0].unlink()
    with pytest.raises(CheckpointError, match="not found"):
        load(saved[1])


def test_truncated_weights(saved):
    weights, _ = saved
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="outside the file|truncated"):
        load(weights)
    weights.write_bytes(data[:4])
    with pytest.raises(CheckpointError, match="truncated"):
        load(weights)


def test_lying_header_length_and_offsets(saved):
    weights, _ = saved
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 10**12) + data[8:])
    with pytest.raises(CheckpointError, match="header length"):
        load(weights)
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    name = next(k for k in header if k != "__metadata__")
    header[name]["data_offsets"] = [0, 10**9]
    raw = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + header_len :])
    with pytest.raises(CheckpointError, match="outside the file|does not match its shape"):
        load(weights)


def test_card_that_does_not_match_the_weights(saved):
    _, card_path = saved
    card = json.loads(card_path.read_text())
    card["config"]["hidden_size"] = 7
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="does not match its card"):
        load(card_path)


def test_unknown_architecture_and_bad_config(saved):
    _, card_path = saved
    card = json.loads(card_path.read_text())
    card_path.write_text(json.dumps({**card, "arch": "os.system"}))
    with pytest.raises(CheckpointError, match="unknown architecture"):
        load(card_path)
    card_path.write_text(json.dumps({**card, "config": {**card["config"], "__class__": 1}}))
    with pytest.raises(CheckpointError, match="invalid crmn config"):
        load(card_path)


def test_card_asking_for_absurd_sizes_is_refused_without_allocating(saved):
    _, card_path = saved
    card = json.loads(card_path.read_text())
    card["config"].update(width=1024, depth=1202, hidden_size=8192)
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="above the limit"):
        load(card_path)
    card["config"].update(width=10**9)
    card_path.write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="width"):
        load(card_path)


def test_card_that_is_not_json_or_has_bad_normalisation(saved):
    _, card_path = saved
    card = json.loads(card_path.read_text())
    card_path.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(card_path)
    card_path.write_text(json.dumps({**card, "normalization": {"mean": [0], "std": [0]}}))
    with pytest.raises(CheckpointError, match="normalization"):
        load(card_path)


def test_a_loaded_model_can_be_deep_copied_and_shares_its_immutable_card(tmp_path):
    """Sanity checks randomise a deep copy and float64 attributions run one: a loaded model must copy."""
    import copy

    crmn_viz.save(tiny_model("crmn", num_outputs=10, input_size=32), tmp_path / "tiny", dataset="cifar10")
    model = crmn_viz.load(tmp_path / "tiny.safetensors")
    twin = copy.deepcopy(model)
    assert twin.card is model.card and twin.card.dataset == "cifar10"
    twin.fc.weight.data.zero_()
    assert model.fc.weight.abs().sum() > 0  # the weights themselves are copied
