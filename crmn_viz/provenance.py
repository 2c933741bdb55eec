"""What made a figure: the checkpoint, its weights digest, the input images and every setting.

A :class:`Provenance` travels with a figure to its files: :mod:`crmn_viz.figures.export`
writes it into ``<name>.meta.json`` and inside the figure file itself (PDF Title, Subject,
Keywords and a ``/CrmnVizProvenance`` entry; an SVG ``<metadata>`` element; PNG text chunks;
an HTML ``<meta>`` tag), so a reader of the PDF can tell exactly what drew it::

    provenance = Provenance.of(model, images=[("cat.png", cat_bytes)], settings={"gate": "forget_gate"})
    export_figure(fig, "forget.pdf", provenance=provenance)

Digests are computed from bytes that were actually read: the model's weights digest is the
one :func:`crmn_viz.load` computed (:class:`crmn_viz.checkpoints.CheckpointIdentity`), and
an image's is the SHA-256 of the file's bytes as uploaded or read from disk.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crmn_viz.checkpoints import CheckpointIdentity, checkpoint_key

__all__ = ["ImageRecord", "Provenance", "file_sha256"]

PROVENANCE_KEY = "crmn-viz:provenance"
"""Name of the provenance entry inside PNG text chunks and the HTML ``<meta>`` tag."""


def file_sha256(data: bytes | str | Path) -> str:
    """SHA-256 (hex) of a file's bytes, given as bytes or as a path."""
    raw = data if isinstance(data, bytes) else Path(data).read_bytes()
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class ImageRecord:
    """One input image of a figure: its name and the SHA-256 (hex) of its file's bytes."""

    name: str
    sha256: str


def _plain(value: Any) -> Any:
    """A JSON-ready, hashable-by-text form of a setting value (numbers, text, lists, dicts)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):  # numpy and torch scalars and arrays
        return _plain(value.tolist())
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_plain(item) for item in items]
    return str(value)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from crmn_viz import __version__

    return __version__


@dataclass(frozen=True)
class Provenance:
    """Everything that shaped one figure.

    Attributes:
        checkpoint: the checkpoint's name (zoo name, or the uploaded file's name).
        arch: its architecture (``crmn``, ``resnet``, ``renet``, ``rir``).
        weights_sha256: SHA-256 (hex) of the weights file, as computed when it was loaded.
        images: the input images, in order, with the SHA-256 of each file's bytes.
        settings: every option that shaped the figure (method and its options, target, units,
            step, layer, box...), as JSON-ready values with sorted keys.
        created: when the figure was made (UTC, ISO 8601).
        crmn_viz_version: the version of this package that made it.
    """

    checkpoint: str
    arch: str
    weights_sha256: str
    images: tuple[ImageRecord, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    created: str = field(default_factory=_now)
    crmn_viz_version: str = field(default_factory=_version)

    @classmethod
    def of(
        cls,
        model: Any,
        images: Iterable[tuple[str, bytes | str | Path] | ImageRecord] = (),
        settings: Mapping[str, Any] | None = None,
        *,
        checkpoint: str | None = None,
    ) -> Provenance:
        """The provenance of a figure drawn from ``model``.

        Args:
            model: a model from :func:`crmn_viz.load` (its ``model.checkpoint`` identity gives
                the name and weights digest); any other model is named ``checkpoint`` (or
                ``"unsaved <arch>"``) with the digest of its state dict.
            images: ``(name, file bytes or path)`` pairs, or ready :class:`ImageRecord` objects.
            settings: the options that shaped the figure.
            checkpoint: overrides the checkpoint name.
        """
        identity = getattr(model, "checkpoint", None)
        if isinstance(identity, CheckpointIdentity):
            name, digest = identity.name, identity.weights_sha256
        else:
            name, digest = f"unsaved {model.arch}", checkpoint_key(model).rsplit(":", 1)[-1]
        records = tuple(
            item if isinstance(item, ImageRecord) else ImageRecord(str(item[0]), file_sha256(item[1]))
            for item in images
        )
        return cls(
            checkpoint=checkpoint or name,
            arch=model.arch,
            weights_sha256=digest,
            images=records,
            settings=tuple(sorted((str(key), _plain(value)) for key, value in (settings or {}).items())),
        )

    def with_settings(self, **settings: Any) -> Provenance:
        """A copy with more (or changed) settings."""
        merged = {**dict(self.settings), **{key: _plain(value) for key, value in settings.items()}}
        return Provenance(
            self.checkpoint,
            self.arch,
            self.weights_sha256,
            self.images,
            tuple(sorted(merged.items())),
            self.created,
            self.crmn_viz_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written into ``meta.json`` and into the figure files."""
        return {
            "checkpoint": self.checkpoint,
            "arch": self.arch,
            "weights_sha256": self.weights_sha256,
            "images": [{"name": image.name, "sha256": image.sha256} for image in self.images],
            "settings": dict(self.settings),
            "created": self.created,
            "crmn_viz_version": self.crmn_viz_version,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON text."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Read back what :meth:`to_dict` wrote."""
        return cls(
            checkpoint=str(data["checkpoint"]),
            arch=str(data["arch"]),
            weights_sha256=str(data["weights_sha256"]),
            images=tuple(ImageRecord(str(i["name"]), str(i["sha256"])) for i in data.get("images", [])),
            settings=tuple(sorted((str(k), _plain(v)) for k, v in dict(data.get("settings", {})).items())),
            created=str(data["created"]),
            crmn_viz_version=str(data["crmn_viz_version"]),
        )

    @property
    def identity(self) -> str:
        """A digest of everything but the time: the same figure of the same inputs gives the same one."""
        content = self.to_dict()
        del content["created"]
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def describe_settings(self) -> str:
        """The settings as one short line, e.g. ``"gate=forget_gate, units=0-31"``."""
        return ", ".join(f"{key}={_short(value)}" for key, value in self.settings) or "default settings"

    def title(self, figure_name: str) -> str:
        """A document title: the figure's name and the checkpoint that drew it."""
        return f"{figure_name} ({self.checkpoint})"

    def subject(self) -> str:
        """One line on what made the figure (checkpoint, digest, images, settings, version)."""
        images = ", ".join(f"{image.name} (sha256 {image.sha256[:12]})" for image in self.images)
        return (
            f"crmn-viz {self.crmn_viz_version}: {self.arch} checkpoint {self.checkpoint} "
            f"(weights sha256 {self.weights_sha256}); images: {images or 'none'}; "
            f"settings: {self.describe_settings()}; made {self.created}"
        )

    def keywords(self) -> list[str]:
        """Searchable tags: package, architecture, checkpoint, digests and settings."""
        words = [
            "crmn-viz",
            f"crmn-viz {self.crmn_viz_version}",
            f"arch={self.arch}",
            f"checkpoint={self.checkpoint}",
            f"weights_sha256={self.weights_sha256}",
        ]
        words += [f"image={image.name} sha256={image.sha256}" for image in self.images]
        words += [f"{key}={_short(value)}" for key, value in self.settings]
        return words


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
