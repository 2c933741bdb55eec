"""Training logs: the per-epoch records ``crmn-viz train`` writes, read as arrays.

A run writes ``runs/<name>/metrics.jsonl`` (:func:`crmn_viz.training.train`): one JSON object
per line and per epoch, with ``epoch`` (1-based), ``train_loss``, ``lr`` (the learning rate at
the end of the epoch), ``epoch_time_s``, ``images_per_s``, ``train_accuracy`` (classifiers),
and on evaluation epochs (every fifth and the last) the test metrics ``test_accuracy`` or
``test_nme_crop`` with ``test_num_images``; a run with stochastic weight averaging adds
``swa_epochs_averaged`` and ``iterate_test_*`` (the SGD weights beside their average). The zoo
ships each checkpoint's log as ``docs/training-logs/<checkpoint>.jsonl``.

Where the app finds a checkpoint's log (:func:`find_training_log`), in order:

1. ``$CRMN_VIZ_TRAINING_LOGS`` (:data:`TRAINING_LOGS_ENV`): a folder, or several separated by
   :data:`os.pathsep`, holding ``<checkpoint>.jsonl`` files;
2. ``<checkpoint folder>/../docs/training-logs``, beside the checkpoint folder
   (:func:`crmn_viz.checkpoints.checkpoint_dir`): how the repository ships them.

A log is data from a file: it is parsed as JSON only (never evaluated or unpickled), every line
must be one object of numbers with a positive integer ``epoch``, and anything else is refused
with a :class:`TrainingLogError` naming the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = [
    "MAX_TRAINING_LOG_BYTES",
    "TRAINING_LOGS_ENV",
    "TrainingLog",
    "TrainingLogError",
    "find_training_log",
    "read_training_log",
    "training_log_folders",
    "warm_restart_epochs",
]

TRAINING_LOGS_ENV = "CRMN_VIZ_TRAINING_LOGS"
"""Environment variable naming the folder(s) searched first for ``<checkpoint>.jsonl`` logs."""

MAX_TRAINING_LOG_BYTES = 16 * 1024 * 1024
"""Largest log read (16 MiB; the zoo's longest, 135 epochs, is 25 kB)."""

_COMMON_FIELDS = ("train_loss", "train_accuracy", "test_accuracy", "lr", "epoch_time_s", "images_per_s")
_PLAIN_NAME = re.compile(r"^[\w][\w.\-]*$")


class TrainingLogError(ValueError):
    """A training log is unreadable or malformed; the message names the file and the line."""


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class TrainingLog:
    """One run's per-epoch records as arrays, one entry per logged epoch (E epochs).

    Every array is float64 of shape [E] and holds NaN where an epoch's record lacks the field
    (``test_accuracy`` is measured on evaluation epochs only; a keypoint model has no accuracy).

    Attributes:
        name: the checkpoint the log belongs to (the file's stem).
        file_name: the log's file name, e.g. ``"crmn-cifar10.jsonl"``.
        sha256: SHA-256 (hex) of the file's bytes as read.
        epoch: the 1-based epoch of every record [E], increasing.
        train_loss: mean training loss over the epoch [E].
        train_accuracy: training accuracy under augmentation, in [0, 1] [E].
        test_accuracy: test accuracy where measured, in [0, 1] [E].
        lr: learning rate at the end of the epoch [E].
        epoch_time_s: wall time of the epoch's training steps, seconds [E].
        images_per_s: training throughput [E].
        extra: every other field of the log (``test_nme_crop``, ``test_num_images``,
            ``swa_epochs_averaged``, ``iterate_test_accuracy``...), name -> [E].
    """

    name: str
    file_name: str
    sha256: str
    epoch: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    lr: np.ndarray
    epoch_time_s: np.ndarray
    images_per_s: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        """How many epochs are logged (E)."""
        return int(self.epoch.shape[0])

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field present on at least one epoch, ``epoch`` excluded."""
        common = tuple(name for name in _COMMON_FIELDS if np.isfinite(getattr(self, name)).any())
        return common + tuple(self.extra)

    def column(self, name: str) -> np.ndarray:
        """The array [E] of any field (NaN where absent; all NaN for a field the log never has)."""
        if name == "epoch":
            return self.epoch.astype(np.float64)
        if name in _COMMON_FIELDS:
            return getattr(self, name)
        return self.extra.get(name, np.full(self.epochs, np.nan))

    def measured(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(epochs, values)`` of the epochs where ``name`` was recorded (finite values only)."""
        values = self.column(name)
        keep = np.isfinite(values)
        return self.epoch[keep], values[keep]

    def last(self, name: str) -> float | None:
        """The last recorded value of ``name``, or None when no epoch has it."""
        _, values = self.measured(name)
        return float(values[-1]) if values.size else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise TrainingLogError(f"repeated key(s) {repeated}")
    return dict(pairs)


def _parse_record(line: str, label: str) -> dict[str, float]:
    """One line as ``field -> number``; raises :class:`TrainingLogError` naming ``label``."""
    try:
        record = json.loads(line, object_pairs_hook=_refuse_duplicate_keys)
    except TrainingLogError as err:
        raise TrainingLogError(f"{label}: {err}") from None
    except ValueError as err:  # json.JSONDecodeError
        raise TrainingLogError(f"{label}: not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(record, dict):
        raise TrainingLogError(f"{label}: a record must be a JSON object, got a {type(record).__name__}")
    epoch = record.get("epoch")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 1):
        raise TrainingLogError(f"{label}: 'epoch' must be a positive integer, got {str(epoch)[:40]!r}")
    for key, value in record.items():
        if not _is_number(value) and value is not None:
            raise TrainingLogError(
                f"{label}: field {key[:60]!r} must be a number, got a {type(value).__name__}"
            )
    return {key: math.nan if value is None else float(value) for key, value in record.items()}


def read_training_log(path: str | os.PathLike[str]) -> TrainingLog:
    """Read a ``metrics.jsonl`` training log (see the module docstring for its fields).

    Blank lines are skipped. A record whose epoch is not above the previous one means the run
    was resumed from a state saved before its last lines were written (``crmn-viz train``
    resumes from ``last_state.pt``): the later records replace the earlier ones from that
    epoch on, as they describe the weights the run went on with.

    Args:
        path: the ``.jsonl`` file; its stem names the checkpoint.

    Returns:
        The :class:`TrainingLog`, with the SHA-256 of the bytes read.

    Raises:
        TrainingLogError: the file is missing, too large (:data:`MAX_TRAINING_LOG_BYTES`), not
            UTF-8, has no record, or a line that is not a JSON object of numbers with a positive
            integer ``epoch`` (the message gives the file name and the line number).
    """
    source = Path(path)
    try:
        size = source.stat().st_size
    except OSError as err:
        raise TrainingLogError(f"training log {source} cannot be read ({err.strerror})") from None
    if size > MAX_TRAINING_LOG_BYTES:
        raise TrainingLogError(f"training log {source.name} is larger than {MAX_TRAINING_LOG_BYTES} bytes")
    raw = source.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TrainingLogError(f"training log {source.name} is not UTF-8 text ({err.reason})") from None
    records: list[dict[str, float]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _parse_record(line, f"{source.name}, line {number}")
        while records and records[-1]["epoch"] >= record["epoch"]:
            records.pop()  # a resumed run: its later records supersede these
        records.append(record)
    if not records:
        raise TrainingLogError(f"training log {source.name} holds no epoch records")
    names = list(dict.fromkeys(key for record in records for key in record if key != "epoch"))
    columns = {
        name: np.array([record.get(name, math.nan) for record in records], dtype=np.float64) for name in names
    }
    empty = np.full(len(records), np.nan)
    return TrainingLog(
        name=source.stem,
        file_name=source.name,
        sha256=hashlib.sha256(raw).hexdigest(),
        epoch=np.array([int(record["epoch"]) for record in records], dtype=np.int64),
        **{name: columns.pop(name, empty.copy()) for name in _COMMON_FIELDS},
        extra=MappingProxyType(columns),
    )


def training_log_folders(checkpoints: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders :func:`find_training_log` searches, in order.

    Args:
        checkpoints: the checkpoint folder (default :func:`crmn_viz.checkpoints.checkpoint_dir`).

    Returns:
        Each folder of ``$CRMN_VIZ_TRAINING_LOGS`` (split at :data:`os.pathsep`), then
        ``<checkpoints>/../docs/training-logs``.
    """
    from crmn_viz.checkpoints import checkpoint_dir

    folders = [Path(part) for part in os.environ.get(TRAINING_LOGS_ENV, "").split(os.pathsep) if part]
    base = Path(checkpoints) if checkpoints is not None else checkpoint_dir()
    folders.append(base.resolve().parent / "docs" / "training-logs")
    return folders


def find_training_log(checkpoint_name: str, checkpoints: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the training log of a checkpoint is: ``<checkpoint_name>.jsonl`` in the first folder
    of :func:`training_log_folders` that has it.

    The folders are ``$CRMN_VIZ_TRAINING_LOGS`` (one or several, :data:`os.pathsep`-separated),
    then ``docs/training-logs`` beside the checkpoint folder's parent
    (``<checkpoint_dir>/../docs/training-logs``, how the repository ships the zoo's logs). The
    package itself knows no repository path.

    Args:
        checkpoint_name: a zoo name such as ``"crmn-cifar10"`` (a plain file stem: no folder).
        checkpoints: the checkpoint folder (default :func:`crmn_viz.checkpoints.checkpoint_dir`).

    Returns:
        The log's path, or None when no folder has one.

    Raises:
        ValueError: ``checkpoint_name`` is not a plain name (a path, ``..``, an empty string).
    """
    if not isinstance(checkpoint_name, str) or not _PLAIN_NAME.match(checkpoint_name):
        raise ValueError(f"a checkpoint name is a plain file stem, got {str(checkpoint_name)[:80]!r}")
    for folder in training_log_folders(checkpoints):
        candidate = folder / f"{checkpoint_name}.jsonl"
        if candidate.is_file():
            return candidate
    return None


def warm_restart_epochs(log: TrainingLog) -> np.ndarray:
    """The epochs at which the learning rate rises again after it had been falling.

    A warm restart (SGDR, Loshchilov & Hutter 2017) starts a new cycle: the learning rate logged
    at the end of epoch ``e`` is above that of epoch ``e - 1``, which was below that of epoch
    ``e - 2``. A one-cycle warm-up (rising from the first epoch) is not a restart.

    Returns:
        The 1-based epochs [R] that begin a new cycle (int64; empty when none).
    """
    lr = log.lr
    rising = lr[2:] > lr[1:-1]
    fell = lr[1:-1] < lr[:-2]
    return log.epoch[2:][rising & fell]
