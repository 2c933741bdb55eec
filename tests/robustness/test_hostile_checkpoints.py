"""Hostile checkpoints through the app's upload path and :func:`crmn_viz.load`.

Every hostile pair is tried twice: written to a folder and opened with ``crmn_viz.load``, and
handed as ``(name, bytes)`` pairs to :func:`crmn_viz.inputs.uploads.load_checkpoint_upload`
(what the Streamlit app calls). Each must end in a :class:`~crmn_viz.CheckpointError` whose
message gives the reason. Three things are proven along the way:

* Nothing from a file is executed: pickle payloads would create a marker file when
  unpickled (a control test shows they do), the marker never appears, and ``pickle`` and
  ``torch.load`` are replaced by tripwires that fail the test if anything calls them.
* The upload path writes nothing outside a private temporary folder, which is gone
  afterwards: ``tempfile`` is pointed at a folder of the test, which must be empty after
  every call, and an audit hook (:func:`sys.addaudithook`) records every file opened for
  writing, every folder made and every rename during the call: all of them must lie inside
  that private folder and use the loader's fixed names, never an uploaded name such as
  ``../../evil.safetensors``.
* A card that describes an absurd model is refused without building it.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import pickle
import struct
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

import crmn_viz
from crmn_viz import CheckpointError
from crmn_viz.checkpoints import checkpoint_key
from crmn_viz.inputs.uploads import load_checkpoint_upload
from tests.conftest import tiny_model
from tests.robustness.conftest import MiB, measure_memory

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# --------------------------------------------------------------------------- a good checkpoint to spoil


@dataclass(frozen=True)
class Pair:
    """A checkpoint as bytes: the weights (safetensors) and the card (JSON)."""

    weights: bytes
    card: bytes

    @property
    def card_dict(self) -> dict[str, Any]:
        return json.loads(self.card)

    def with_card(self, **changes: Any) -> Pair:
        return Pair(self.weights, json.dumps({**self.card_dict, **changes}).encode())

    def with_config(self, **changes: Any) -> Pair:
        return self.with_card(config={**self.card_dict["config"], **changes})


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    folder = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    model = tiny_model("crmn", num_outputs=10, input_size=16)
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    weights, card = crmn_viz.save(
        model, folder / "good", dataset="cifar10", class_names=CLASSES, normalization=norm
    )
    return Pair(weights.read_bytes(), card.read_bytes())


def split(weights: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and the data of a safetensors file."""
    (length,) = struct.unpack("<Q", weights[:8])
    return json.loads(weights[8 : 8 + length]), weights[8 + length :]


def join(header: dict[str, Any] | bytes, data: bytes) -> bytes:
    """A safetensors file from a header (dict, or raw JSON bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def tensor_entries(header: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Header entries in file order."""
    entries = [(name, info) for name, info in header.items() if name != "__metadata__"]
    return sorted(entries, key=lambda item: item[1]["data_offsets"][0])


def restored(weights: bytes, change: Callable[[dict[str, torch.Tensor]], None]) -> bytes:
    """Re-save the tensors of ``weights`` after ``change`` edited them (a genuine safetensors file)."""
    state = load_safetensors(weights)
    change(state)
    return save_safetensors(state, metadata={"format": "pt"})


# --------------------------------------------------------------------------- the two entry points


@dataclass
class WriteRecorder:
    """Records, from one thread, the file system changes Python reports through audit events."""

    active: bool = False
    thread: int = 0
    writes: list[tuple[str, str]] = field(default_factory=list)
    folder_modes: list[int] = field(default_factory=list)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active or threading.get_ident() != self.thread:
            return
        if event == "open":
            path, mode, flags = args
            writing = isinstance(mode, str) and any(flag in mode for flag in "wax+")
            if mode is None and isinstance(flags, int):
                writing = bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))
            if writing and not isinstance(path, int):
                self.writes.append((event, os.fsdecode(path)))
        if event == "os.mkdir":
            self.folder_modes.append(args[1])
        if event in ("os.mkdir", "os.symlink", "os.link", "os.truncate", "shutil.copyfile"):
            self.writes.append(
                (event, os.fsdecode(args[0]) if not isinstance(args[0], int) else str(args[0]))
            )
        if event in ("os.rename", "os.replace"):
            self.writes.extend((event, os.fsdecode(path)) for path in args[:2])


RECORDER = WriteRecorder()
sys.addaudithook(RECORDER)  # audit hooks cannot be removed; it does nothing while inactive


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``tempfile`` at a folder of this test; it must be empty again afterwards."""
    root = tmp_path / "tmp-root"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    yield root
    assert not list(root.iterdir()), f"the upload left files behind: {list(root.rglob('*'))}"


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every unpickling entry point by a tripwire; returns the list of calls."""
    calls: list[str] = []

    def tripwire(name: str) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            raise AssertionError(f"{name} was called while loading a checkpoint")

        return refuse

    for module, names in ((pickle, ("load", "loads", "Unpickler")), (torch, ("load",))):
        for name in names:
            monkeypatch.setattr(module, name, tripwire(f"{module.__name__}.{name}"))
    return calls


def via_load(pair: Pair, folder: Path) -> crmn_viz.TracedModel:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ckpt.safetensors").write_bytes(pair.weights)
    (folder / "ckpt.json").write_bytes(pair.card)
    return crmn_viz.load(folder / "ckpt", device="cpu")


def via_upload(
    pair: Pair, root: Path, names: tuple[str, str] = ("model.safetensors", "model.json")
) -> crmn_viz.TracedModel:
    """The app's upload path, with every file system change recorded and checked."""
    RECORDER.writes.clear()
    RECORDER.folder_modes.clear()
    RECORDER.thread, RECORDER.active = threading.get_ident(), True
    try:
        return load_checkpoint_upload([(names[0], pair.weights), (names[1], pair.card)], device="cpu").model
    finally:
        RECORDER.active = False
        check_writes(RECORDER.writes, root)


def check_writes(writes: list[tuple[str, str]], root: Path) -> None:
    """Every change is the private folder itself or a fixed name inside it."""
    private = [Path(path) for event, path in writes if event == "os.mkdir"]
    assert len(private) <= 1, writes
    for event, path in writes:
        if "__pycache__" in path:  # Python's own byte-code cache, not the loader
            continue
        target = Path(path).resolve()
        assert target.is_relative_to(root.resolve()), f"{event} outside the private folder: {path}"
        relative = target.relative_to(root.resolve())
        assert relative.parts[0].startswith("crmn-viz-upload-"), (event, path)
        assert relative.name in (relative.parts[0], "checkpoint.safetensors", "checkpoint.json"), (
            event,
            path,
        )


@pytest.fixture(params=["load", "upload"])
def loader(
    request: pytest.FixtureRequest, private_tmp: Path, tmp_path: Path, tripwires: list[str]
) -> Iterator[Callable[[Pair], crmn_viz.TracedModel]]:
    """``crmn_viz.load`` on files in a folder, then the app's upload path; both under tripwires."""
    if request.param == "load":
        yield lambda pair: via_load(pair, tmp_path / "files")
    else:
        yield lambda pair: via_upload(pair, private_tmp)
    assert not tripwires, f"unpickling was attempted: {tripwires}"


def refused(loader: Callable[[Pair], Any], pair: Pair, *words: str) -> str:
    with pytest.raises(CheckpointError) as caught:
        loader(pair)
    message = str(caught.value)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.fixture(scope="module", autouse=True)
def _warm_up(good: Pair, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Load each architecture once, so lazy imports (torch's meta-device initialisers) are done."""
    folder = tmp_path_factory.mktemp("warm")
    via_load(good, folder / "crmn")
    for arch in ("rir", "resnet", "renet"):
        crmn_viz.save(tiny_model(arch), folder / arch)
        crmn_viz.load(folder / arch, device="cpu")


# --------------------------------------------------------------------------- pickles never run


class Payload:
    """Unpickling this creates ``marker`` (through ``open(marker, "w")``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def pickle_payloads(marker: Path) -> dict[str, bytes]:
    """A plain pickle and a ``torch.save`` zip, each creating ``marker`` when unpickled."""
    raw = pickle.dumps({"state_dict": Payload(marker)}, protocol=2)
    buffer = io.BytesIO()
    torch.save({"state_dict": Payload(marker)}, buffer)
    return {"raw pickle": raw, "torch.save zip": buffer.getvalue()}


def test_control_the_payloads_do_run_when_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payloads = pickle_payloads(marker)
    pickle.loads(payloads["raw pickle"])
    assert marker.exists(), "the payload is live: unpickling it creates the marker"
    marker.unlink()
    torch.load(io.BytesIO(payloads["torch.save zip"]), weights_only=False)
    assert marker.exists(), "the torch.save payload is live too"


@pytest.mark.parametrize("kind", ["raw pickle", "torch.save zip"])
def test_pickle_renamed_safetensors_is_refused_and_never_run(
    loader: Callable[[Pair], Any], good: Pair, tmp_path: Path, kind: str
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle_payloads(marker)[kind]
    refused(loader, Pair(payload, good.card), "header")
    refused(loader, Pair(good.weights, payload), "JSON")
    assert not marker.exists()


def test_pickled_files_are_refused_by_name_in_the_upload(good: Pair, private_tmp: Path) -> None:
    for name in ("model.pt", "model.pth", "model.ckpt", "model.bin", "model.pkl"):
        with pytest.raises(CheckpointError, match="never loaded"):
            load_checkpoint_upload([(name, b"\x80\x02}q\x00."), ("model.json", good.card)], device="cpu")


def test_pickle_bytes_inside_a_valid_safetensors_are_just_numbers(
    loader: Callable[[Pair], Any], good: Pair, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle_payloads(marker)["raw pickle"]
    header, data = split(good.weights)
    data = payload + data[len(payload) :]  # the first tensors' bytes now hold the pickle
    weights = join(header, data)
    # The attacker writes both files, so the card names the digest of the altered weights.
    model = loader(Pair(weights, good.card).with_card(weights_sha256=hashlib.sha256(weights).hexdigest()))
    assert model.arch == "crmn" and not marker.exists()


# --------------------------------------------------------------------------- forged identity


def test_a_card_over_other_weights_is_refused_naming_both_digests(
    loader: Callable[[Pair], Any], good: Pair
) -> None:
    torch.manual_seed(1)
    other_model = tiny_model("crmn", num_outputs=10, input_size=16)  # same shapes, other weights
    other = {key: value.contiguous() for key, value in other_model.state_dict().items()}
    other_weights = save_safetensors(other, metadata={"format": "pt", "arch": "crmn"})
    claimed = good.card_dict["weights_sha256"]
    actual = hashlib.sha256(other_weights).hexdigest()
    assert claimed != actual
    message = refused(loader, Pair(other_weights, good.card), "sha-256", claimed, actual)
    assert "other weights" in message


@pytest.mark.parametrize("claim", ["0" * 63, "z" * 64, 12345, ["a"]])
def test_a_malformed_weights_digest_is_refused(loader: Callable[[Pair], Any], good: Pair, claim: Any) -> None:
    refused(loader, good.with_card(weights_sha256=claim), "weights_sha256", "hexadecimal")


def test_the_identity_is_computed_from_the_bytes_read(loader: Callable[[Pair], Any], good: Pair) -> None:
    card = good.card_dict
    del card["weights_sha256"]  # a card that claims nothing is accepted: its identity is computed
    for pair in (good, Pair(good.weights, json.dumps(card).encode())):
        model = loader(pair)
        assert model.checkpoint.weights_sha256 == hashlib.sha256(good.weights).hexdigest()
        assert model.checkpoint.card_sha256 == hashlib.sha256(pair.card).hexdigest()
        assert (
            checkpoint_key(model) == f"crmn:{model.checkpoint.weights_sha256}:{model.checkpoint.card_sha256}"
        )


# --------------------------------------------------------------------------- lying safetensors headers


def test_huge_strings_in_metadata_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    header, data = split(good.weights)
    header["__metadata__"] = {"format": "pt", "notes": "x" * (2 * MiB)}
    refused(loader, Pair(join(header, data), good.card), "__metadata__", "above the limit")
    header["__metadata__"] = {"format": "pt", "nested": {"a": ["b"] * 10}}
    refused(loader, Pair(join(header, data), good.card), "__metadata__", "strings")


def test_duplicate_keys_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    header, data = split(good.weights)
    name, info = tensor_entries(header)[0]
    raw = json.dumps(header)[:-1] + f", {json.dumps(name)}: {json.dumps(info)}}}"
    refused(loader, Pair(join(raw.encode(), data), good.card), "repeated key")
    card = good.card.decode().rstrip().rstrip("}") + ', "arch": "resnet"}'
    refused(loader, Pair(good.weights, card.encode()), "repeated key")


def test_negative_offsets_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    header, data = split(good.weights)
    name, info = tensor_entries(header)[0]
    start, end = info["data_offsets"]
    header[name]["data_offsets"] = [start - 8, end - 8]
    refused(loader, Pair(join(header, data), good.card), "outside the file")


def test_overlapping_offsets_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    header, data = split(good.weights)
    entries = tensor_entries(header)
    first, second = next(
        (a, b)
        for a, b in itertools.pairwise(entries)
        if a[1]["data_offsets"][1] - a[1]["data_offsets"][0]
        == b[1]["data_offsets"][1] - b[1]["data_offsets"][0]
        and a[1]["shape"] == b[1]["shape"]
    )
    header[second[0]]["data_offsets"] = list(first[1]["data_offsets"])
    refused(loader, Pair(join(header, data), good.card), "overlaps")


def test_bytes_that_belong_to_no_tensor_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    refused(loader, Pair(good.weights + b"\0" * 64, good.card), "belong to no tensor")


@pytest.mark.parametrize("dtype", ["I8", "U8", "BOOL", "F64", "I32", "F8_E4M3"])
def test_unsupported_dtypes_are_refused(loader: Callable[[Pair], Any], good: Pair, dtype: str) -> None:
    header, data = split(good.weights)
    name, _ = tensor_entries(header)[0]
    header[name]["dtype"] = dtype
    refused(loader, Pair(join(header, data), good.card), "unsupported dtype")


def test_integer_data_for_float_weights_is_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    def to_integers(state: dict[str, torch.Tensor]) -> None:
        key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() > 1)
        state[key] = (state[key] * 1000).to(torch.int64)

    refused(loader, Pair(restored(good.weights, to_integers), good.card), "needs floating-point")

    def to_floats(state: dict[str, torch.Tensor]) -> None:
        key = next(k for k, v in state.items() if not v.is_floating_point())
        state[key] = state[key].to(torch.float32)

    refused(loader, Pair(restored(good.weights, to_floats), good.card), "needs integer")


MALFORMED_ENTRIES: dict[str, Any] = {
    "shape of negatives": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]},
    "shape as text": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]},
    "shape of floats": {"dtype": "F32", "shape": [2.0, 2.0], "data_offsets": [0, 16]},
    "offsets as text": {"dtype": "F32", "shape": [4], "data_offsets": ["0", "16"]},
    "three offsets": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]},
    "dtype as list": {"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]},
    "entry as list": [0, 16],
    "extra field": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "eval": "os.system('x')"},
    "nine dimensions": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]},
}


@pytest.mark.parametrize("case", list(MALFORMED_ENTRIES))
def test_malformed_entries_are_refused_with_a_checkpoint_error(
    loader: Callable[[Pair], Any], good: Pair, case: str
) -> None:
    header, data = split(good.weights)
    name, _ = tensor_entries(header)[0]
    header[name] = MALFORMED_ENTRIES[case]
    refused(loader, Pair(join(header, data), good.card))


def test_deeply_nested_json_is_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    depth = 200_000
    nested = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    refused(loader, Pair(join(nested, b""), good.card), "nested too deeply")
    card = good.card.decode().rstrip().rstrip("}") + ', "notes": ' + "[" * depth + "]" * depth + "}"
    refused(loader, Pair(good.weights, card.encode()), "nested too deeply")


def test_absurd_numbers_in_json_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    card = good.card.decode().rstrip().rstrip("}") + ', "num_parameters": ' + "9" * 5000 + "}"
    refused(loader, Pair(good.weights, card.encode()), "not valid JSON")
    refused(
        loader, good.with_card(normalization={"mean": [0.5] * 3, "std": [float("nan")] * 3}), "normalization"
    )


def test_too_many_tensors_are_refused_from_the_header(loader: Callable[[Pair], Any], good: Pair) -> None:
    from crmn_viz.checkpoints import MAX_TENSORS

    header = {f"t{k}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for k in range(MAX_TENSORS + 1)}
    refused(loader, Pair(join(header, b""), good.card), "tensors", "above the limit")


def test_truncated_and_lying_lengths_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    refused(loader, Pair(good.weights[:4], good.card), "truncated")
    refused(loader, Pair(good.weights[: len(good.weights) // 2], good.card))
    refused(loader, Pair(struct.pack("<Q", 10**12) + good.weights[8:], good.card), "header length")
    refused(loader, Pair(b"", good.card))


# --------------------------------------------------------------------------- hostile cards


def test_path_traversal_names_in_the_card_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    for key, value in (
        ("name", "../../evil"),
        ("name", "/etc/passwd"),
        ("dataset", "../../../data"),
        ("dataset", "C:\\Windows"),
        ("name", "evil\0.safetensors"),
    ):
        refused(loader, good.with_card(**{key: value}), key)


@pytest.mark.parametrize(
    "names",
    [
        ["<script>alert(1)</script>", *CLASSES[1:]],
        ['<img src=x onerror="alert(1)">', *CLASSES[1:]],
        ["cat\x1b[31m", *CLASSES[1:]],
        "<b>cat</b>",
        [{"html": "<b>"}, *CLASSES[1:]],
    ],
)
def test_class_names_with_markup_are_refused(loader: Callable[[Pair], Any], good: Pair, names: Any) -> None:
    refused(loader, good.with_card(class_names=names), "class_names")


def test_unknown_architectures_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    for arch in ("os.system", "__import__('os').system('touch pwned')", "", None, ["crmn"]):
        refused(loader, good.with_card(arch=arch), "unknown architecture")


def test_config_with_code_or_unknown_options_is_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    refused(loader, good.with_config(__class__="os.system"), "invalid crmn config")
    refused(loader, good.with_config(depth="__import__('os')"), "invalid crmn config")
    refused(loader, good.with_card(config="depth=20"), "config")


def test_config_values_of_the_wrong_type_are_refused(loader: Callable[[Pair], Any], good: Pair) -> None:
    """Found by fuzzing: values that pass the config's checks but break its constructor."""
    for changes in ({"forget_bias": {"x": 1}}, {"forget_bias": None}, {"width": True}, {"hidden_size": [6]}):
        refused(loader, good.with_config(**changes), "config")


def test_the_cards_input_must_be_the_one_its_config_builds(loader: Callable[[Pair], Any], good: Pair) -> None:
    """A card may not make the app resize every image to 4096 x 4096 for a 16 x 16 model."""
    refused(loader, good.with_card(input_size=[4096, 4096]), "4096 x 4096", "16 x 16")
    refused(loader, good.with_card(in_channels=1), "1 channels")
    for size in ("x", [16], None, {"h": 16}, [float("inf"), 16]):
        refused(loader, good.with_card(input_size=size), "input")


ABSURD_CONFIGS: dict[str, tuple[str, dict[str, Any], str]] = {
    "crmn with 300M+ values": (
        "crmn",
        {"width": 1024, "depth": 1202, "hidden_size": 8192},
        "above the limit",
    ),
    "crmn 10^9 wide": ("crmn", {"width": 10**9}, "width"),
    "renet 100 layers": (
        "renet",
        {"patch_sizes": [2] * 100, "hidden_sizes": [4] * 100, "fc_sizes": [], "input_size": 32},
        "layers",
    ),
    "rir 20 stages x 200 blocks x 50 layers": (
        "rir",
        {"widths": [1] * 20, "blocks_per_stage": [200] * 20, "layers_per_block": 50},
        "above the limit",
    ),
    "rir 3 stages of width 2048": (
        "rir",
        {"widths": [2048] * 3, "blocks_per_stage": [200] * 3, "layers_per_block": 50},
        "above the limit",
    ),
}


@pytest.mark.parametrize("case", list(ABSURD_CONFIGS))
def test_absurd_sizes_are_refused_without_building_the_model(
    loader: Callable[[Pair], Any], good: Pair, case: str
) -> None:
    arch, changes, words = ABSURD_CONFIGS[case]
    config = {**good.card_dict["config"], **changes} if arch == "crmn" else changes
    pair = good.with_card(arch=arch, config=config)
    use, outcome = measure_memory(lambda: loader(pair))
    assert isinstance(outcome, CheckpointError), outcome
    assert words in str(outcome), outcome
    # The full models need tens of thousands of modules (gigabytes, minutes) even on the meta device.
    use.assert_below(64 * MiB, case)


# --------------------------------------------------------------------------- the upload path itself


def test_uploaded_names_are_never_used_as_paths(
    good: Pair, private_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    for names in (
        ("../../evil.safetensors", "../../evil.json"),
        (str(tmp_path / "evil.safetensors"), str(tmp_path / "evil.json")),
        ("..\\..\\evil.safetensors", "..\\..\\evil.json"),
        ("evil\0.safetensors", "evil\0.json"),
        ("/dev/null/../evil.safetensors", "/proc/self/evil.json"),
    ):
        model = via_upload(good, private_tmp, names)
        assert model.arch == "crmn"
    assert not [path for path in tmp_path.rglob("*") if "evil" in path.name]
    assert not list(work.iterdir())


def test_a_good_upload_uses_one_private_folder_and_removes_it(good: Pair, private_tmp: Path) -> None:
    model = via_upload(good, private_tmp, ("my-crmn.safetensors", "my-crmn.json"))
    assert model.card["dataset"] == "cifar10"
    made = [path for event, path in RECORDER.writes if event == "os.mkdir"]
    assert len(made) == 1 and not Path(made[0]).exists()
    assert RECORDER.folder_modes == [0o700], "only its owner may read the folder"
    written = sorted(Path(path).name for event, path in RECORDER.writes if event == "open")
    assert written == ["checkpoint.json", "checkpoint.safetensors"]


def test_failed_uploads_clean_their_private_folder_too(good: Pair, private_tmp: Path) -> None:
    for pair in (
        Pair(good.weights[:100], good.card),
        good.with_card(arch="evil"),
        Pair(b"\x80\x02.", good.card),
    ):
        with pytest.raises(CheckpointError):
            via_upload(pair, private_tmp)
        assert not list(private_tmp.iterdir())


def test_wrong_file_sets_and_sizes_are_refused_before_anything_is_written(
    good: Pair, private_tmp: Path
) -> None:
    cases = [
        ([("a.safetensors", good.weights)], "exactly two files"),
        (
            [("a.safetensors", good.weights), ("a.json", good.card), ("b.json", good.card)],
            "exactly two files",
        ),
        ([("a.json", good.card), ("b.json", good.card)], "exactly two files"),
        ([("a.safetensors", good.weights), ("a.json", b" " * 1_000_001)], "larger than"),
        ([("a.safetensors", good.weights), ("a.txt", good.card)], "only a .safetensors"),
    ]
    for files, words in cases:
        RECORDER.writes.clear()
        RECORDER.thread, RECORDER.active = threading.get_ident(), True
        try:
            with pytest.raises(CheckpointError, match=words):
                load_checkpoint_upload(files, device="cpu")
        finally:
            RECORDER.active = False
        assert not RECORDER.writes, RECORDER.writes
    with pytest.raises(CheckpointError, match="upload limit"):
        load_checkpoint_upload([("a.safetensors", good.weights), ("a.json", good.card)], max_bytes=1000)


# --------------------------------------------------------------------------- properties

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(header=st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=5), data=st.binary(max_size=64))
def test_random_headers_only_ever_raise_checkpoint_error(
    good: Pair, header: dict[str, Any], data: bytes
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="crmn-viz-fuzz-"))
    try:
        with pytest.raises(CheckpointError):
            via_load(Pair(join(header, data), good.card), folder)
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def card_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path inside a card."""
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from card_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from card_paths(item, (*prefix, index))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_cards_with_random_values_load_or_raise_checkpoint_error(good: Pair, data: st.DataObject) -> None:
    card = good.card_dict
    paths = sorted(card_paths(card), key=repr)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent = card
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = data.draw(JSON_VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this path
    encoded = json.dumps(card).encode()
    try:
        model = load_checkpoint_upload(
            [("m.safetensors", good.weights), ("m.json", encoded)], device="cpu"
        ).model
    except CheckpointError as err:
        assert str(err)
    else:
        assert model.preprocess.input_size == model.input_shape[1:]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=4),
    in_card=st.booleans(),
)
def test_corrupted_checkpoints_load_or_raise_checkpoint_error(
    good: Pair, flips: list[tuple[int, int]], in_card: bool
) -> None:
    target = bytearray(good.card if in_card else good.weights)
    header_end = 8 + struct.unpack("<Q", good.weights[:8])[0]
    for position, value in flips:
        # In the weights, hit the header (where the structure is) most of the time.
        limit = len(target) if in_card or position % 3 == 0 else header_end
        target[position % limit] = value
    pair = Pair(good.weights, bytes(target)) if in_card else Pair(bytes(target), good.card)
    try:
        model = load_checkpoint_upload(
            [("m.safetensors", pair.weights), ("m.json", pair.card)], device="cpu"
        ).model
    except CheckpointError as err:
        assert str(err)
    else:
        assert model.arch in crmn_viz.list_architectures()
