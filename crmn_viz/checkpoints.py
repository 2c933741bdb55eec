"""Checkpoints: ``name.safetensors`` (weights) + ``name.json`` (model card). Never pickle.

Loading is defensive because checkpoints may come from strangers (an uploaded file in
a public Space): the JSON card is parsed as data and validated field by field, the
safetensors header is checked before any tensor is read, the architecture is first
built on PyTorch's ``meta`` device (no memory) to compare every name and shape with the
file and to bound the parameter count, and only then are the weights loaded. Any
problem raises :class:`CheckpointError` with the reason.

Every bound (card, header and metadata sizes, tensor and parameter counts) comes from
:data:`crmn_viz.limits.LIMITS`. JSON with repeated keys is refused (two readers could
disagree on which value counts), the header's tensors must tile the data exactly (no
overlaps, gaps or trailing bytes, as the safetensors format requires), every stored dtype
must suit its tensor (floating-point weights are never read from integer data), and card
strings that are shown on screen (class names, data set, name) must be plain text.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file
from torch.overrides import TorchFunctionMode

from crmn_viz import devices
from crmn_viz.limits import LIMITS, Limits
from crmn_viz.models import config_class, create_model, list_architectures
from crmn_viz.models.base import TracedModel
from crmn_viz.preprocessing import Preprocessor

__all__ = [
    "CheckpointError",
    "CheckpointIdentity",
    "ModelCard",
    "build_skeleton",
    "checkpoint_dir",
    "checkpoint_key",
    "list_checkpoints",
    "load",
    "load_card",
    "resolve_checkpoint",
    "save",
]

FORMAT_VERSION = 1
MAX_CARD_BYTES = LIMITS.max_card_bytes  # CRMN_VIZ_MAX_CARD_BYTES
MAX_HEADER_BYTES = LIMITS.max_header_bytes  # CRMN_VIZ_MAX_HEADER_BYTES
MAX_METADATA_BYTES = LIMITS.max_metadata_bytes  # CRMN_VIZ_MAX_METADATA_BYTES
MAX_PARAMETERS = LIMITS.max_parameters  # CRMN_VIZ_MAX_PARAMETERS: refuse cards that ask for absurd models
MAX_TENSORS = LIMITS.max_tensors  # CRMN_VIZ_MAX_TENSORS
MAX_CHECKPOINT_BYTES = LIMITS.max_checkpoint_bytes  # CRMN_VIZ_MAX_CHECKPOINT_BYTES
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_ITEM_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}
_ALLOWED_DTYPES = set(_ITEM_SIZES)
_FLOAT_DTYPES = {"F32", "F16", "BF16"}
_PLAIN_TEXT = re.compile(r"^[^<>\x00-\x1f\x7f]*$")
_PLAIN_NAME = re.compile(r"^[\w][\w.\- ]*$")


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, inconsistent, or unsafe. The message says why."""


@dataclass(frozen=True)
class CheckpointIdentity:
    """What a loaded checkpoint is, from the bytes :func:`load` read (never from the card's claims).

    Attributes:
        name: the weights file's stem (the zoo name); front ends may give an upload its own name
            with :func:`dataclasses.replace`.
        arch: the architecture that was built.
        weights_sha256: SHA-256 (hex) of the ``.safetensors`` bytes the tensors were read from.
        card_sha256: SHA-256 (hex) of the ``.json`` card bytes that were parsed.
    """

    name: str
    arch: str
    weights_sha256: str
    card_sha256: str

    @property
    def cache_key(self) -> str:
        """Key for results shared between sessions: the architecture and both digests.

        The card's digest is part of it because the card shapes results too (class names,
        normalisation): the same weights under another card are another model.
        """
        return f"{self.arch}:{self.weights_sha256}:{self.card_sha256}"


_NO_ENTRIES: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class ModelCard(Mapping[str, Any]):
    """A checkpoint's model card (the validated ``.json`` beside the weights), as typed fields.

    :func:`load` attaches one as ``model.card``. Read it through the attributes
    (``model.card.dataset``, ``model.card.class_names``); for code written against the JSON
    dict it is also a read-only mapping of the card's keys to their JSON values
    (``card["arch"]``, ``card.get("metrics", {})``, ``dict(card)``), lists left as lists.
    Analyses that read a card accept any mapping, so a model built in code may carry a plain dict.

    Attributes:
        arch: architecture key (``"crmn"``, ...).
        config: the model options the card was built with.
        task: ``"classification"`` or ``"keypoints"``.
        input_size: (height, width) in pixels the preprocessing resizes to, when stated.
        in_channels: input channels, when stated.
        dataset: the data set it was trained on (plain text), when stated.
        class_names: one label per output class, when stated.
        normalization: ``{"mean": (...), "std": (...)}`` per input channel, when stated.
        metrics: test metrics recorded by training or ``crmn-viz eval``.
        training: the training record (command, epochs, recipe, hardware...).
        notes: free-text notes.
        name: a display name, when the card gives one.
        weights_sha256: the weights digest the card claims (:func:`load` refuses a card whose
            claim differs from the bytes read; :class:`CheckpointIdentity` has the computed one).
        raw: every key of the card as parsed (the mapping interface reads it).
    """

    arch: str
    config: Mapping[str, Any]
    task: str = "classification"
    input_size: tuple[int, int] | None = None
    in_channels: int | None = None
    dataset: str | None = None
    class_names: tuple[str, ...] | None = None
    normalization: Mapping[str, tuple[float, ...]] | None = None
    metrics: Mapping[str, Any] = field(default_factory=lambda: _NO_ENTRIES)
    training: Mapping[str, Any] = field(default_factory=lambda: _NO_ENTRIES)
    notes: str | None = None
    name: str | None = None
    weights_sha256: str | None = None
    raw: Mapping[str, Any] = field(default_factory=lambda: _NO_ENTRIES, repr=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> ModelCard:
        """The card itself: it is immutable (read-only mappings), so a deep copy of a loaded model
        (a randomised copy for a sanity check, a float64 copy for attributions) shares it."""
        return self

    @classmethod
    def from_dict(cls, card: Mapping[str, Any]) -> ModelCard:
        """Build from a card dict that :func:`validate_card` accepted (it is copied, not kept)."""
        raw = copy.deepcopy(dict(card))
        config = raw.get("config") if isinstance(raw.get("config"), dict) else {}
        size = raw.get("input_size", config.get("input_size"))
        if isinstance(size, int) and not isinstance(size, bool):
            size = [size, size]
        input_size = (
            (int(size[0]), int(size[1]))
            if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) for v in size)
            else None
        )
        channels = raw.get("in_channels", config.get("in_channels"))
        names = raw.get("class_names")
        norm = raw.get("normalization")

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) else None

        def entries(key: str) -> Mapping[str, Any]:
            value = raw.get(key)
            return MappingProxyType(value) if isinstance(value, dict) else _NO_ENTRIES

        return cls(
            arch=str(raw.get("arch", "")),
            config=MappingProxyType(config),
            task=text("task") or "classification",
            input_size=input_size,
            in_channels=channels if isinstance(channels, int) and not isinstance(channels, bool) else None,
            dataset=text("dataset"),
            class_names=tuple(names) if isinstance(names, list) else None,
            normalization=(
                MappingProxyType({key: tuple(norm[key]) for key in ("mean", "std")})
                if isinstance(norm, dict) and all(isinstance(norm.get(key), list) for key in ("mean", "std"))
                else None
            ),
            metrics=entries("metrics"),
            training=entries("training"),
            notes=text("notes"),
            name=text("name"),
            weights_sha256=text("weights_sha256"),
            raw=MappingProxyType(raw),
        )

    def to_dict(self) -> dict[str, Any]:
        """The card as a plain JSON-ready dict (a copy of :attr:`raw`)."""
        return copy.deepcopy(dict(self.raw))

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self.raw) == dict(other.raw if isinstance(other, ModelCard) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a card holds dicts


def checkpoint_dir() -> Path:
    """Folder of the shipped zoo: ``$CRMN_VIZ_CHECKPOINT_DIR`` or the repository's ``checkpoints/``."""
    env = os.environ.get("CRMN_VIZ_CHECKPOINT_DIR")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "checkpoints"


def _package_version() -> str:
    from crmn_viz import __version__

    return __version__


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    base = Path(path)
    if base.suffix in (".safetensors", ".json"):
        base = base.with_suffix("")
    return base.with_name(base.name + ".safetensors"), base.with_name(base.name + ".json")


def save(
    model: TracedModel,
    path: str | os.PathLike[str],
    *,
    half: bool = False,
    **metadata: Any,
) -> tuple[Path, Path]:
    """Write ``path.safetensors`` and ``path.json``.

    Args:
        model: any model from :func:`crmn_viz.create_model`.
        path: destination without (or with) an extension.
        half: store floating-point tensors as float16 (loading restores float32).
        **metadata: card fields, e.g. ``dataset``, ``class_names``, ``normalization``
            (``{"mean": [...], "std": [...]}``), ``metrics``, ``training``, ``notes``.

    Returns:
        The two paths written.
    """
    weights_path, card_path = _paths(path)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    save_file(tensors, str(weights_path), metadata={"format": "pt", "arch": model.arch})
    channels, height, width = model.input_shape
    card: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "arch": model.arch,
        "config": model.config.to_dict(),
        "task": model.task,
        "input_size": [height, width],
        "in_channels": channels,
        "num_parameters": model.num_parameters(),
        "package_version": _package_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": hashlib.sha256(weights_path.read_bytes()).hexdigest(),
        "storage_dtype": "float16" if half else "float32",
    }
    card.update(metadata)
    card_path.write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
    return weights_path, card_path


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(weights .safetensors path, card .json path)`` for a zoo name or a file path.

    A bare name (no suffix, no separator) found in :func:`checkpoint_dir` wins; otherwise the
    path is taken as given (either file of the pair). Pickle suffixes are refused.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if not candidate.suffix and os.sep not in text and "/" not in text:
        zoo_weights, zoo_card = _paths(checkpoint_dir() / text)
        if zoo_card.exists() or zoo_weights.exists():
            return zoo_weights, zoo_card
    if candidate.suffix not in ("", ".safetensors", ".json"):
        raise CheckpointError(
            f"{candidate.name!r} is not a crmn-viz checkpoint: only a .safetensors weights file "
            "with its .json card is accepted (pickled .pt/.pth/.ckpt files are never loaded)"
        )
    return _paths(candidate)


def load_card(card_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a model card (JSON). Raises :class:`CheckpointError`."""
    return _read_card(Path(card_path))[0]


def _read_card(path: Path) -> tuple[dict[str, Any], bytes]:
    """The validated card and the exact bytes it was parsed from (read once)."""
    if not path.exists():
        raise CheckpointError(f"model card {path} not found (a checkpoint is name.safetensors + name.json)")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise CheckpointError(f"model card {path.name} is larger than {MAX_CARD_BYTES} bytes")
    raw = path.read_bytes()
    if len(raw) > MAX_CARD_BYTES:  # the file grew between the two looks
        raise CheckpointError(f"model card {path.name} is larger than {MAX_CARD_BYTES} bytes")
    return validate_card(_parse_json(raw, f"model card {path.name}"), path.name), raw


class _DuplicateKeyError(ValueError):
    """A JSON object repeats a key."""


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise _DuplicateKeyError(f"repeated key(s) {[key[:40] for key in repeated[:5]]}")
    return dict(pairs)


def _parse_json(raw: bytes, label: str) -> Any:
    """Parse JSON as plain data; refuse repeated keys, absurd nesting and absurd numbers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CheckpointError(f"{label} is not valid JSON: it is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except _DuplicateKeyError as err:
        raise CheckpointError(f"{label} is not valid: {err} (each key must appear once)") from None
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{label} is not valid JSON: {err}") from None
    except RecursionError:
        raise CheckpointError(f"{label} is not valid: its JSON is nested too deeply") from None
    except ValueError as err:  # e.g. an integer with more digits than Python converts
        raise CheckpointError(f"{label} is not valid JSON: {err}") from None


def _check_plain_text(value: Any, label: str, field_name: str, *, name_like: bool = False) -> None:
    """Card strings shown on screen: short, no markup, no control characters, no paths."""
    if not isinstance(value, str) or not value or len(value) >= 200:
        raise CheckpointError(f"{label}: {field_name!r} must be a non-empty string of under 200 characters")
    if not _PLAIN_TEXT.match(value):
        raise CheckpointError(
            f"{label}: {field_name!r} must be plain text (no HTML markup '<', '>' or control characters), "
            f"got {value[:60]!r}"
        )
    if name_like and (not _PLAIN_NAME.match(value) or ".." in value):
        raise CheckpointError(
            f"{label}: {field_name!r} must be a plain name (letters, digits, '_', '-', '.', spaces; no "
            f"folders or '..'), got {value[:60]!r}"
        )


def validate_card(card: Any, label: str = "model card") -> dict[str, Any]:
    """Check the card's fields; return it unchanged or raise :class:`CheckpointError`."""
    if not isinstance(card, dict):
        raise CheckpointError(f"{label}: expected a JSON object")
    arch = card.get("arch")
    if arch not in list_architectures():
        raise CheckpointError(f"{label}: unknown architecture {arch!r}; known: {list_architectures()}")
    config = card.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{label}: 'config' must be an object of {arch} options")
    try:
        config_class(arch).from_dict(config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{label}: invalid {arch} config: {err}") from None
    norm = card.get("normalization")
    if norm is not None:
        channels = int(config.get("in_channels", 3))
        ok = isinstance(norm, dict) and all(
            isinstance(norm.get(k), list)
            and len(norm[k]) == channels
            and all(isinstance(v, (int, float)) for v in norm[k])
            for k in ("mean", "std")
        )
        if (
            not ok
            or not all(math.isfinite(v) for k in ("mean", "std") for v in norm[k])
            or any(v <= 0 for v in norm["std"])
        ):
            raise CheckpointError(
                f"{label}: 'normalization' must be {{'mean': [...], 'std': [...]}} with "
                f"{channels} finite numbers each and positive std"
            )
    names = card.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) and len(n) < 200 for n in names):
            raise CheckpointError(f"{label}: 'class_names' must be a list of short strings")
        for name in names:
            _check_plain_text(name, label, "class_names")
    for key in ("dataset", "name"):
        if card.get(key) is not None:
            _check_plain_text(card[key], label, key, name_like=True)
    return card


def _read_header(weights_path: Path, max_bytes: int) -> tuple[dict[str, Any], bytes, int]:
    """Parse and sanity-check a weights file's safetensors header without reading its tensors.

    Returns the header, its raw bytes (the 8-byte length and the JSON) and the file size, so
    that the one full read later can check that it starts with exactly these bytes.
    """
    if not weights_path.exists():
        raise CheckpointError(f"weights file {weights_path} not found")
    size = weights_path.stat().st_size
    file_name = weights_path.name
    if size > max_bytes:
        raise CheckpointError(
            f"{file_name} is {size / 2**20:.0f} MB, above the limit of {max_bytes / 2**20:.0f} MB "
            f"({Limits.env_name('max_checkpoint_bytes')})"
        )
    with weights_path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{file_name} is truncated (no safetensors header)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or header_len + 8 > size:
            raise CheckpointError(
                f"{file_name} has an invalid safetensors header length ({header_len} bytes "
                f"for a {size}-byte file): truncated or not a safetensors file"
            )
        raw = handle.read(header_len)
    return _parse_header(raw, size - 8 - header_len, file_name), prefix + raw, size


def _read_weights(weights_path: Path, header_bytes: bytes, size: int) -> bytes:
    """Every byte of a weights file, read once: the digest and the tensors both come from them.

    Refused when the file is no longer the one whose header was checked (another size, or
    other header bytes), so nothing checked earlier can be swapped in between.
    """
    with weights_path.open("rb") as handle:
        raw = handle.read(size + 1)
    if len(raw) != size or not raw.startswith(header_bytes):
        raise CheckpointError(f"{weights_path.name} changed while it was being read; try again")
    return raw


def _parse_header(raw: bytes, data_len: int, file_name: str) -> dict[str, Any]:
    """Check a safetensors JSON header against the ``data_len`` bytes of tensor data after it."""
    header = _parse_json(raw, f"{file_name}: safetensors header")
    if not isinstance(header, dict):
        raise CheckpointError(f"{file_name}: safetensors header is not an object")
    _check_metadata(header.get("__metadata__"), file_name)
    entries = {name: info for name, info in header.items() if name != "__metadata__"}
    if len(entries) > MAX_TENSORS:
        raise CheckpointError(
            f"{file_name} holds {len(entries):,} tensors, above the limit of {MAX_TENSORS:,}"
        )
    spans = []
    for name, info in entries.items():
        start, end, shape, dtype = _check_entry(name, info, file_name)
        if not (0 <= start <= end <= data_len):
            raise CheckpointError(
                f"{file_name}: tensor {name!r} points outside the file (truncated or lying header)"
            )
        if math.prod(shape) * _ITEM_SIZES[dtype] != end - start:
            raise CheckpointError(f"{file_name}: tensor {name!r} size does not match its shape")
        spans.append((start, end, name))
    position = 0
    for start, end, name in sorted(spans):
        if start < position:
            raise CheckpointError(f"{file_name}: tensor {name!r} overlaps another tensor's data")
        if start > position:
            raise CheckpointError(
                f"{file_name}: {start - position} bytes before tensor {name!r} belong to no tensor"
            )
        position = end
    if position != data_len:
        raise CheckpointError(
            f"{file_name}: {data_len - position} bytes after the last tensor belong to no tensor"
        )
    return header


def _check_metadata(metadata: Any, file_name: str) -> None:
    """The optional ``__metadata__``: a small flat object of strings, as the format defines it."""
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in metadata.items()
    ):
        raise CheckpointError(f"{file_name}: '__metadata__' must be an object of strings")
    size = sum(len(key.encode()) + len(value.encode()) for key, value in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise CheckpointError(
            f"{file_name}: '__metadata__' takes {size:,} bytes, above the limit of {MAX_METADATA_BYTES:,}"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_entry(name: str, info: Any, file_name: str) -> tuple[int, int, list[int], str]:
    """One tensor's header entry: integer offsets, a shape of non-negative integers, a known dtype."""
    label = repr(name[:80])
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{file_name}: malformed entry for {label}")
    offsets, shape, dtype = info["data_offsets"], info["shape"], info["dtype"]
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(v, int) for v in offsets)):
        raise CheckpointError(f"{file_name}: malformed entry for {label} (data_offsets)")
    if not (isinstance(shape, list) and len(shape) <= 8 and all(_is_count(dim) for dim in shape)):
        raise CheckpointError(
            f"{file_name}: tensor {label} has an invalid shape {str(shape)[:80]} "
            "(a list of at most 8 non-negative integers)"
        )
    if not isinstance(dtype, str) or dtype not in _ALLOWED_DTYPES:
        raise CheckpointError(
            f"{file_name}: tensor {label} has unsupported dtype {str(dtype)[:20]} "
            f"(accepted: {', '.join(sorted(_ALLOWED_DTYPES))})"
        )
    return offsets[0], offsets[1], shape, dtype


class _BoundedConstruction(TorchFunctionMode):
    """Stops building a model as soon as it creates more values or tensors than it may have.

    A card's config can describe a model that takes minutes and gigabytes to build even on
    the ``meta`` device (e.g. thousands of RiR stages). A matching checkpoint never needs
    more than its weights file holds, nor more than the limits, so the build is stopped as
    soon as the tensor factories have created more than that (with a margin for temporary
    tensors); the exact names, shapes and counts are compared afterwards.
    """

    _FACTORIES = frozenset(
        {
            "empty",
            "zeros",
            "ones",
            "full",
            "tensor",
            "rand",
            "randn",
            "randint",
            "arange",
            "eye",
            "as_tensor",
            "empty_strided",
            "new_empty",
            "new_zeros",
            "new_ones",
            "new_full",
            "new_tensor",
        }
    )

    def __init__(self, max_values: int, max_tensors: int, stored_values: int, stored_tensors: int) -> None:
        super().__init__()
        self.values = self.tensors = 0
        by_limit = (int(1.25 * max_values), int(1.1 * max_tensors) + 64)
        by_file = (int(1.25 * stored_values) + 1_000_000, int(1.1 * stored_tensors) + 64)
        self.value_budget, self.tensor_budget = min(by_limit[0], by_file[0]), min(by_limit[1], by_file[1])
        file_note = "its weights file holds (they do not match)"
        self.reasons = (
            f"above the limit of {max_values:,}"
            if by_limit[0] <= by_file[0]
            else f"above the limit of the {stored_values:,} values {file_note}",
            f"above the limit of {max_tensors:,}"
            if by_limit[1] <= by_file[1]
            else f"above the limit of the {stored_tensors:,} tensors {file_note}",
        )

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in self._FACTORIES and isinstance(result, torch.Tensor):
            self.values += result.numel()
            self.tensors += 1
            if self.values > self.value_budget:
                raise CheckpointError(
                    f"the card asks for more than {self.values:,} values, {self.reasons[0]}"
                )
            if self.tensors > self.tensor_budget:
                raise CheckpointError(
                    f"the card asks for more than {self.tensors:,} tensors, {self.reasons[1]}"
                )
        return result


def load(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    max_parameters: int = MAX_PARAMETERS,
    max_tensors: int = MAX_TENSORS,
    max_bytes: int = MAX_CHECKPOINT_BYTES,
) -> TracedModel:
    """Load a checkpoint (a zoo name such as ``"crmn-cifar10"`` or a path).

    Returns the model in eval mode on ``device`` (``"auto"``: ``$CRMN_VIZ_DEVICE`` when set, else
    CUDA when present, else CPU: :func:`crmn_viz.devices.select_device`) with ``model.card`` (a
    :class:`ModelCard`) and ``model.preprocess`` (a :class:`~crmn_viz.preprocessing.Preprocessor`
    built from the card).

    ``max_parameters`` (values in the state dict) and ``max_tensors`` bound the model a
    card may describe; the model is first built on the ``meta`` device, and that build
    stops early when it grows far beyond either bound. ``max_bytes`` bounds the weights file.

    The weights file is read once: its SHA-256, its header and its tensors all come from
    those bytes. A card whose ``weights_sha256`` differs from that digest is refused. The
    model gets ``model.checkpoint`` (a :class:`CheckpointIdentity` of the computed digests),
    from which :func:`checkpoint_key` makes cache keys.

    Raises:
        CheckpointError: missing, truncated, mismatched or hostile files.
        crmn_viz.devices.DeviceError: ``device`` (or ``$CRMN_VIZ_DEVICE``) names a device this
            machine does not have.
    """
    target = devices.select_device(device)  # before any file is read: a bad device fails at once
    weights_path, card_path = resolve_checkpoint(name_or_path)
    card, card_bytes = _read_card(card_path)
    header, header_bytes, weights_size = _read_header(weights_path, max_bytes)
    arch = card["arch"]
    config = config_class(arch).from_dict(card["config"])
    entries = [info for name, info in header.items() if name != "__metadata__"]
    stored_values = sum(math.prod(info["shape"]) for info in entries)
    bounded = _BoundedConstruction(max_parameters, max_tensors, stored_values, len(entries))
    try:
        with torch.device("meta"), bounded:
            skeleton = create_model(arch, **config.to_dict())
    except CheckpointError:
        raise
    except Exception as err:  # a config of the wrong types can trip any error in a constructor
        raise CheckpointError(
            f"{card_path.name}: invalid {arch} config: the model cannot be built ({type(err).__name__}: "
            f"{str(err)[:200]})"
        ) from None
    preprocess = _preprocessor(card, skeleton, card_path.name)
    skeleton_state = skeleton.state_dict()
    expected = {k: tuple(v.shape) for k, v in skeleton_state.items()}
    n_params = sum(int(torch.Size(s).numel()) for s in expected.values())
    if n_params > max_parameters:
        raise CheckpointError(f"the card asks for {n_params:,} values, above the limit of {max_parameters:,}")
    if len(expected) > max_tensors:
        raise CheckpointError(
            f"the card asks for {len(expected):,} tensors, above the limit of {max_tensors:,}"
        )
    stored = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or unexpected or wrong:
        details = "; ".join(
            part
            for part in (
                f"missing {missing[:5]}" if missing else "",
                f"unexpected {unexpected[:5]}" if unexpected else "",
                f"wrong shape {[(k, stored[k], expected[k]) for k in wrong[:3]]}" if wrong else "",
            )
            if part
        )
        raise CheckpointError(f"{weights_path.name} does not match its card ({arch}): {details}")
    wrong_kind = sorted(
        key
        for key, tensor in skeleton_state.items()
        if tensor.is_floating_point() != (header[key]["dtype"] in _FLOAT_DTYPES)
    )
    if wrong_kind:
        key = wrong_kind[0]
        needed = "floating-point" if skeleton_state[key].is_floating_point() else "integer"
        more = f" (and {len(wrong_kind) - 1} more)" if len(wrong_kind) > 1 else ""
        raise CheckpointError(
            f"{weights_path.name}: tensor {key!r} is stored as {header[key]['dtype']} but the model needs "
            f"{needed} values{more}"
        )
    # Structure first (its messages say what is wrong with a file), then identity: the tensors
    # are only decoded once the card's digest is that of these very bytes.
    raw_weights = _read_weights(weights_path, header_bytes, weights_size)
    weights_sha256 = hashlib.sha256(raw_weights).hexdigest()
    _check_claimed_digest(card, weights_sha256, card_path.name, weights_path.name)
    model = create_model(arch, **config.to_dict())
    try:
        state = load_safetensors(raw_weights)  # the same bytes the digest and the header came from
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"could not read {weights_path.name}: {err}") from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model = model.to(target).eval().use_fast_layout()  # channels-last weights for convolutional models
    model.card = ModelCard.from_dict(card)  # type: ignore[attr-defined]
    model.preprocess = preprocess  # type: ignore[attr-defined]
    model.checkpoint = CheckpointIdentity(  # type: ignore[attr-defined]
        name=weights_path.stem,
        arch=arch,
        weights_sha256=weights_sha256,
        card_sha256=hashlib.sha256(card_bytes).hexdigest(),
    )
    return model


def build_skeleton(card: Mapping[str, Any]) -> TracedModel:
    """The model a card describes, built on PyTorch's ``meta`` device: no weights, no memory.

    Enough to ask what the model can show (its capabilities, ``task``, ``block_count``...)
    without reading its weights, e.g. for every checkpoint of the zoo. The build is bounded by
    :data:`crmn_viz.limits.LIMITS` (``max_parameters``, ``max_tensors``) as in :func:`load`.

    Args:
        card: a model card, or an entry of :func:`list_checkpoints` (``arch`` and ``config``
            are read).

    Raises:
        CheckpointError: unknown architecture, invalid config, or a model beyond the limits.
    """
    arch = card.get("arch")
    if arch not in list_architectures():
        raise CheckpointError(f"unknown architecture {arch!r}; known: {list_architectures()}")
    try:
        config = config_class(arch).from_dict(dict(card.get("config") or {}))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"invalid {arch} config: {err}") from None
    bounded = _BoundedConstruction(
        LIMITS.max_parameters, LIMITS.max_tensors, LIMITS.max_parameters, LIMITS.max_tensors
    )
    try:
        with torch.device("meta"), bounded:
            return create_model(arch, **config.to_dict())
    except CheckpointError:
        raise
    except Exception as err:  # a config of the wrong types can trip any error in a constructor
        raise CheckpointError(
            f"invalid {arch} config: the model cannot be built ({type(err).__name__}: {str(err)[:200]})"
        ) from None


def _check_claimed_digest(card: dict[str, Any], actual: str, card_name: str, weights_name: str) -> None:
    """Refuse a card whose ``weights_sha256`` is not the digest of the weights actually read.

    A card without the field is accepted (its identity is the computed digest either way);
    one that names other weights is a forgery or a mix-up, and is refused naming both digests.
    """
    claimed = card.get("weights_sha256")
    if claimed is None:
        return
    if not isinstance(claimed, str) or not _SHA256_HEX.match(claimed):
        raise CheckpointError(
            f"{card_name}: 'weights_sha256' must be 64 hexadecimal digits, got {str(claimed)[:80]!r}"
        )
    if claimed.lower() != actual:
        raise CheckpointError(
            f"{card_name} says its weights have SHA-256 {claimed.lower()}, but {weights_name} has SHA-256 "
            f"{actual}: the card belongs to other weights (refused)"
        )


def checkpoint_key(model: TracedModel) -> str:
    """A session-independent cache key for a model: what was read, never what a card claims.

    For a model from :func:`load` it is :attr:`CheckpointIdentity.cache_key` (both files'
    digests as computed from their bytes); for any other model, the digest of its state dict.
    """
    identity = getattr(model, "checkpoint", None)
    if isinstance(identity, CheckpointIdentity):
        return identity.cache_key
    digest = hashlib.sha256(model.arch.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode() + b"\0")
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"{model.arch}:state:{digest.hexdigest()}"


def _preprocessor(card: dict[str, Any], skeleton: TracedModel, label: str) -> Preprocessor:
    """The card's preprocessing, which must feed the model the input its config was built for."""
    try:
        preprocess = Preprocessor.from_card(card)
    except (TypeError, ValueError, KeyError, OverflowError) as err:
        raise CheckpointError(f"{label}: 'input_size' or 'in_channels' is invalid ({err})") from None
    channels, height, width = skeleton.input_shape
    if preprocess.input_size != (height, width) or preprocess.in_channels != channels:
        raise CheckpointError(
            f"{label}: the card's input ({preprocess.in_channels} channels, "
            f"{preprocess.input_size[0]} x {preprocess.input_size[1]}) is not the input its config builds "
            f"the model for ({channels} channels, {height} x {width})"
        )
    return preprocess


def list_checkpoints(directory: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Cards of the checkpoints in ``directory`` (default: :func:`checkpoint_dir`).

    Each entry is ``{"name", "arch", "config", "task", "dataset", "metrics", "num_parameters",
    "size_bytes"}``; cards that fail validation are skipped. :func:`build_skeleton` makes the
    model an entry describes (on the ``meta`` device), to ask its capabilities.
    """
    folder = Path(directory) if directory is not None else checkpoint_dir()
    entries = []
    for card_path in sorted(folder.glob("*.json")):
        weights = card_path.with_suffix(".safetensors")
        if not weights.exists():
            continue
        try:
            card = load_card(card_path)
        except CheckpointError:
            continue
        entries.append(
            {
                "name": card_path.stem,
                "arch": card["arch"],
                "config": card["config"],
                "task": card.get("task", "classification"),
                "dataset": card.get("dataset"),
                "metrics": card.get("metrics", {}),
                "num_parameters": card.get("num_parameters"),
                "size_bytes": weights.stat().st_size,
            }
        )
    return entries
