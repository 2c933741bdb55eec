"""Checkpoints: ``name.safetensors`` (weights) + ``name.json`` (model card). Never pickle.

Loading is defensive because checkpoints may come from strangers (an uploaded file in
a public Space): the JSON card is parsed as data and validated field by field, the
safetensors header is checked before any tensor is read, the architecture is first
built on PyTorch's ``meta`` device (no memory) to compare every name and shape with the
file and to bound the parameter count, and only then are the weights loaded. Any
problem raises :class:`CheckpointError` with the reason.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from crmn_viz.models import config_class, create_model, list_architectures
from crmn_viz.models.base import TracedModel
from crmn_viz.preprocessing import Preprocessor

__all__ = [
    "CheckpointError",
    "checkpoint_dir",
    "list_checkpoints",
    "load",
    "load_card",
    "save",
]

FORMAT_VERSION = 1
MAX_CARD_BYTES = 1_000_000
MAX_HEADER_BYTES = 10_000_000
MAX_PARAMETERS = 300_000_000  # refuse cards that ask for absurd models
_ALLOWED_DTYPES = {"F32", "F16", "BF16", "I64"}


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, inconsistent, or unsafe. The message says why."""


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


def _resolve(name_or_path: str | os.PathLike[str]) -> tuple[Path, Path]:
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
    path = Path(card_path)
    if not path.exists():
        raise CheckpointError(f"model card {path} not found (a checkpoint is name.safetensors + name.json)")
    if path.stat().st_size > MAX_CARD_BYTES:
        raise CheckpointError(f"model card {path.name} is larger than {MAX_CARD_BYTES} bytes")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"model card {path.name} is not valid JSON: {err}") from None
    return validate_card(card, path.name)


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
        if not ok or any(v <= 0 for v in norm["std"]):
            raise CheckpointError(
                f"{label}: 'normalization' must be {{'mean': [...], 'std': [...]}} with "
                f"{channels} numbers each and positive std"
            )
    names = card.get("class_names")
    if names is not None and (
        not isinstance(names, list) or not all(isinstance(n, str) and len(n) < 200 for n in names)
    ):
        raise CheckpointError(f"{label}: 'class_names' must be a list of short strings")
    return card


def _read_header(weights_path: Path) -> dict[str, Any]:
    """Parse and sanity-check the safetensors JSON header without reading tensors."""
    if not weights_path.exists():
        raise CheckpointError(f"weights file {weights_path} not found")
    size = weights_path.stat().st_size
    with weights_path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{weights_path.name} is truncated (no safetensors header)")
        (header_len,) = struct.unpack("<Q", prefix)
        if header_len > MAX_HEADER_BYTES or header_len + 8 > size:
            raise CheckpointError(
                f"{weights_path.name} has an invalid safetensors header length ({header_len} bytes "
                f"for a {size}-byte file): truncated or not a safetensors file"
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{weights_path.name}: safetensors header is not valid JSON") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{weights_path.name}: safetensors header is not an object")
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            shape, dtype = info["shape"], info["dtype"]
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{weights_path.name}: malformed entry for {name!r}") from None
        if dtype not in _ALLOWED_DTYPES:
            raise CheckpointError(f"{weights_path.name}: tensor {name!r} has unsupported dtype {dtype}")
        if not (0 <= start <= end <= data_len):
            raise CheckpointError(
                f"{weights_path.name}: tensor {name!r} points outside the file (truncated or lying header)"
            )
        itemsize = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}[dtype]
        numel = 1
        for dim in shape:
            numel *= int(dim)
        if numel * itemsize != end - start:
            raise CheckpointError(f"{weights_path.name}: tensor {name!r} size does not match its shape")
    return header


def load(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "auto",
    max_parameters: int = MAX_PARAMETERS,
) -> TracedModel:
    """Load a checkpoint (a zoo name such as ``"crmn-cifar10"`` or a path).

    Returns the model in eval mode on ``device`` (``"auto"``: CUDA when present,
    else CPU) with ``model.card`` (the model card dict) and ``model.preprocess`` (a
    :class:`~crmn_viz.preprocessing.Preprocessor` built from the card).

    Raises:
        CheckpointError: missing, truncated, mismatched or hostile files.
    """
    weights_path, card_path = _resolve(name_or_path)
    card = load_card(card_path)
    header = _read_header(weights_path)
    arch = card["arch"]
    config = config_class(arch).from_dict(card["config"])
    with torch.device("meta"):
        skeleton = create_model(arch, **config.to_dict())
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    n_params = sum(int(torch.Size(s).numel()) for s in expected.values())
    if n_params > max_parameters:
        raise CheckpointError(f"the card asks for {n_params:,} values, above the limit of {max_parameters:,}")
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
    model = create_model(arch, **config.to_dict())
    state = {}
    try:
        with safe_open(str(weights_path), framework="pt", device="cpu") as handle:
            for key in expected:
                state[key] = handle.get_tensor(key)
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"could not read {weights_path.name}: {err}") from None
    reference = model.state_dict()
    state = {k: v.to(reference[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    target = (
        torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if device == "auto"
        else torch.device(device)
    )
    model = model.to(target).eval()
    model.card = card  # type: ignore[attr-defined]
    model.preprocess = Preprocessor.from_card(card)  # type: ignore[attr-defined]
    return model


def list_checkpoints(directory: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Cards of the checkpoints in ``directory`` (default: :func:`checkpoint_dir`).

    Each entry is ``{"name", "arch", "task", "dataset", "metrics", "num_parameters",
    "size_bytes"}``; cards that fail validation are skipped.
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
                "task": card.get("task", "classification"),
                "dataset": card.get("dataset"),
                "metrics": card.get("metrics", {}),
                "num_parameters": card.get("num_parameters"),
                "size_bytes": weights.stat().st_size,
            }
        )
    return entries
