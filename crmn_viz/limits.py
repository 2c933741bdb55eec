"""Every resource bound of crmn-viz in one place, each overridable by an environment variable.

A public Space serves strangers: every upload, request and export is bounded so that one
visitor cannot exhaust the memory, disk or CPU of a free 16 GB, 2 vCPU machine. The bounds
live in one frozen dataclass, :class:`Limits`; the module-level :data:`LIMITS` is read from
the environment once, when :mod:`crmn_viz` is first imported, and the library's defaults
(:class:`ImageLimits` for :mod:`crmn_viz.images`, :class:`AttributionLimits` for
:mod:`crmn_viz.analysis.attributions`, both defined here and re-exported there,
``crmn_viz.checkpoints.MAX_PARAMETERS``, the upload caps of
:mod:`crmn_viz.inputs.uploads`, the export checks of :mod:`crmn_viz.figures.export`,
the Streamlit app and the Gradio demo) all come from it.

Each field ``max_xyz`` is overridden by the variable ``CRMN_VIZ_MAX_XYZ`` (upper case), e.g.
``CRMN_VIZ_MAX_UPLOAD_BYTES=5242880 streamlit run app.py``. Integers may use ``_`` as a
thousands separator (``40_000_000``); a value that is not a number, not finite or below the
field's minimum raises a :class:`ValueError` naming the variable, so a misconfigured Space
fails at start-up instead of running without a bound. An unknown ``CRMN_VIZ_MAX_*`` variable
(a typo) gives a warning.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENV_PREFIX", "LIMITS", "AttributionLimits", "ImageLimits", "LimitSpec", "Limits"]

ENV_PREFIX = "CRMN_VIZ_"
"""Prefix of every environment variable; the rest is the field name in upper case."""


def _limit(default: float, doc: str, *, minimum: float = 1) -> Any:
    """A dataclass field with its documentation and smallest allowed value."""
    return field(default=default, metadata={"doc": doc, "minimum": minimum})


@dataclass(frozen=True)
class LimitSpec:
    """One documented bound: field name, environment variable, default, current value, meaning."""

    name: str
    env: str
    default: float
    value: float
    doc: str


@dataclass(frozen=True)
class Limits:
    """All resource bounds; every field can be overridden by ``CRMN_VIZ_<FIELD NAME IN CAPITALS>``.

    Attributes:
        max_upload_bytes: Largest uploaded image file (app uploads and camera shots), bytes.
        max_upload_pixels: Largest uploaded image, width x height, checked on the file header.
        max_image_bytes: Largest image file :func:`crmn_viz.images.load_image` reads by
            default (gallery, CLI, Gradio), bytes.
        max_image_pixels: Largest image :func:`~crmn_viz.images.load_image` decodes by default.
        max_aspect_ratio: Largest ratio of an image's long side to its short side.
        max_images_per_request: Most images analysed from one upload or selection.
        max_attribution_steps: Largest integrated-gradients ``n_steps``.
        max_attribution_samples: Largest gradient-SHAP ``n_samples``.
        max_attribution_windows: Most occlusion window positions.
        max_attribution_batch: Most network inputs per attribution forward/backward pass.
        max_statistics_images: Most test images for gate statistics in the app.
        max_export_dpi: Highest PNG resolution of an exported figure, dots per inch.
        max_export_inches: Longest side of an exported figure, inches.
        max_export_pixels: Most pixels (width x height) of an exported PNG.
        max_export_figures: Most figures in one export bundle (zip).
        max_checkpoint_bytes: Largest uploaded weights file (``.safetensors``), bytes.
        max_card_bytes: Largest model card (``.json``), bytes.
        max_header_bytes: Largest safetensors JSON header, bytes.
        max_metadata_bytes: Largest safetensors ``__metadata__`` (keys + values), bytes.
        max_parameters: Most values (parameters and buffers) a checkpoint's model may have.
        max_tensors: Most tensors a checkpoint's weights file or model may have.
        max_concurrent_jobs: Heavy jobs (attributions, dataset passes, experiments, export
            bundles) a server runs at once; the others wait in a fair queue
            (:mod:`crmn_viz.jobs`). 0 sizes it from the machine: one per GPU, else one per
            two CPU cores.
        max_result_cache_bytes: Bytes of results a server keeps for all its visitors together
            (:class:`crmn_viz.jobs.ResultCache`); a larger result is refused with a message.
    """

    max_upload_bytes: int = _limit(15 * 1024 * 1024, "largest uploaded image file, bytes (15 MiB)")
    max_upload_pixels: int = _limit(25_000_000, "largest uploaded image, width x height pixels")
    max_image_bytes: int = _limit(20 * 1024 * 1024, "largest image file load_image reads by default, bytes")
    max_image_pixels: int = _limit(40_000_000, "largest image load_image decodes by default, pixels")
    max_aspect_ratio: float = _limit(50.0, "largest long side / short side of an image")
    max_images_per_request: int = _limit(32, "most images analysed from one upload")
    max_attribution_steps: int = _limit(512, "largest integrated-gradients n_steps")
    max_attribution_samples: int = _limit(512, "largest gradient-SHAP n_samples")
    max_attribution_windows: int = _limit(16384, "most occlusion window positions")
    max_attribution_batch: int = _limit(512, "most network inputs per attribution pass")
    max_statistics_images: int = _limit(10_000, "most test images for gate statistics in the app")
    max_export_dpi: float = _limit(1200.0, "highest PNG resolution of an exported figure, dpi")
    max_export_inches: float = _limit(50.0, "longest side of an exported figure, inches")
    max_export_pixels: int = _limit(200_000_000, "most pixels of an exported PNG (width x height)")
    max_export_figures: int = _limit(40, "most figures in one export bundle (zip)")
    max_checkpoint_bytes: int = _limit(300 * 1024 * 1024, "largest uploaded .safetensors file, bytes")
    max_card_bytes: int = _limit(1_000_000, "largest model card (.json), bytes")
    max_header_bytes: int = _limit(10_000_000, "largest safetensors JSON header, bytes")
    max_metadata_bytes: int = _limit(65_536, "largest safetensors __metadata__, bytes", minimum=0)
    max_parameters: int = _limit(300_000_000, "most values (parameters + buffers) of a checkpoint's model")
    max_tensors: int = _limit(20_000, "most tensors in a checkpoint")
    max_concurrent_jobs: int = _limit(
        0, "heavy jobs run at once by a server (0: one per GPU, else one per two CPU cores)", minimum=0
    )
    max_result_cache_bytes: int = _limit(
        512 * 1024 * 1024, "bytes of results a server keeps for its visitors (512 MiB)"
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            _check_value(value, spec, what=spec.name)

    # ------------------------------------------------------------------ environment

    @staticmethod
    def env_name(name: str) -> str:
        """The environment variable of field ``name``, e.g. ``CRMN_VIZ_MAX_UPLOAD_BYTES``."""
        return ENV_PREFIX + name.upper()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, overridden by any ``CRMN_VIZ_MAX_*`` variable set in ``environ``.

        Args:
            environ: The variables to read (default ``os.environ``).

        Returns:
            A new :class:`Limits`.

        Raises:
            ValueError: A variable is empty, not a number, not finite, not an integer where
                one is needed, or below its minimum; the message names the variable.
        """
        environ = os.environ if environ is None else environ
        known = {cls.env_name(spec.name) for spec in dataclasses.fields(cls)}
        unknown = sorted(
            name for name in environ if name.startswith(ENV_PREFIX + "MAX_") and name not in known
        )
        if unknown:
            warnings.warn(
                f"Unknown crmn-viz limit variable(s) {', '.join(unknown)} are ignored; known: "
                f"{', '.join(sorted(known))}.",
                stacklevel=2,
            )
        overrides: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            variable = cls.env_name(spec.name)
            if variable in environ:
                overrides[spec.name] = _parse(environ[variable], spec, variable)
        return cls(**overrides)

    def describe(self) -> Iterator[LimitSpec]:
        """Every bound with its variable, default, current value and meaning (for docs and logs)."""
        for spec in dataclasses.fields(self):
            yield LimitSpec(
                name=spec.name,
                env=self.env_name(spec.name),
                default=spec.default,
                value=getattr(self, spec.name),
                doc=spec.metadata["doc"],
            )

    # ------------------------------------------------------------------ views for the subsystems

    def image_limits(self) -> ImageLimits:
        """The :class:`~crmn_viz.images.ImageLimits` for files read by :func:`~crmn_viz.images.load_image`."""
        return ImageLimits(
            max_pixels=self.max_image_pixels,
            max_bytes=self.max_image_bytes,
            max_aspect_ratio=self.max_aspect_ratio,
        )

    def upload_image_limits(self) -> ImageLimits:
        """The :class:`~crmn_viz.images.ImageLimits` for uploaded images."""
        return ImageLimits(
            max_pixels=self.max_upload_pixels,
            max_bytes=self.max_upload_bytes,
            max_aspect_ratio=self.max_aspect_ratio,
        )

    def attribution_limits(self) -> AttributionLimits:
        """The :class:`~crmn_viz.analysis.AttributionLimits` of these limits."""
        return AttributionLimits(
            max_steps=self.max_attribution_steps,
            max_samples=self.max_attribution_samples,
            max_windows=self.max_attribution_windows,
            max_batch=self.max_attribution_batch,
        )


def _is_integer_field(spec: dataclasses.Field) -> bool:
    return spec.type in (int, "int")


def _check_value(value: Any, spec: dataclasses.Field, *, what: str) -> None:
    minimum = spec.metadata["minimum"]
    integer = _is_integer_field(spec)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{what} must be a finite number of at least {minimum:g}, got {value!r}")


def _parse(text: str, spec: dataclasses.Field, variable: str) -> int | float:
    """Read one variable's value; errors name the variable and say what is expected."""
    kind = "a whole number" if _is_integer_field(spec) else "a number"
    expected = (
        f"{kind} of at least {spec.metadata['minimum']:g} ({spec.metadata['doc']}; default {spec.default})"
    )
    cleaned = text.strip()
    try:
        value: int | float = int(cleaned) if _is_integer_field(spec) else float(cleaned)
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not valid: expected {expected}.") from None
    try:
        _check_value(value, spec, what=variable)
    except ValueError:
        raise ValueError(f"{variable}={text!r} is not valid: expected {expected}.") from None
    return value


LIMITS: Limits = Limits.from_env()
"""The limits in force: the defaults overridden by the environment when :mod:`crmn_viz` was imported."""


@dataclass(frozen=True)
class ImageLimits:
    """Limits that protect the app from inputs that are too big or too odd to show.

    Used by :func:`crmn_viz.images.load_image` (and importable from :mod:`crmn_viz.images`).
    The defaults come from :data:`LIMITS` (``CRMN_VIZ_MAX_IMAGE_PIXELS``,
    ``CRMN_VIZ_MAX_IMAGE_BYTES``, ``CRMN_VIZ_MAX_ASPECT_RATIO``).

    Attributes:
        max_pixels: Largest width x height allowed, checked on the file header
            before decoding (default 40 megapixels, e.g. 8000 x 5000).
        max_bytes: Largest encoded size in bytes (default 20 MB) for paths,
            bytes and file objects.
        max_aspect_ratio: Largest ratio of the long side to the short side
            (default 50, so a 1 x 50 strip is accepted and 1 x 51 is not).
    """

    max_pixels: int = LIMITS.max_image_pixels
    max_bytes: int = LIMITS.max_image_bytes
    max_aspect_ratio: float = LIMITS.max_aspect_ratio

    def __post_init__(self) -> None:
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be at least 1, got {self.max_pixels}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {self.max_bytes}")
        if self.max_aspect_ratio < 1:
            raise ValueError(f"max_aspect_ratio must be at least 1, got {self.max_aspect_ratio}")


@dataclass(frozen=True)
class AttributionLimits:
    """Upper bounds that keep one attribution affordable (an app can expose the options safely).

    Used by :func:`crmn_viz.analysis.attribute` (and importable from :mod:`crmn_viz.analysis`).
    The defaults come from :data:`LIMITS` (``CRMN_VIZ_MAX_ATTRIBUTION_STEPS``, ``_SAMPLES``,
    ``_WINDOWS`` and ``_BATCH``).

    Attributes:
        max_steps: integrated-gradients ``n_steps``.
        max_samples: gradient-SHAP ``n_samples``.
        max_windows: occlusion window positions.
        max_batch: the largest ``max_batch`` (network inputs per forward/backward pass).
    """

    max_steps: int = LIMITS.max_attribution_steps
    max_samples: int = LIMITS.max_attribution_samples
    max_windows: int = LIMITS.max_attribution_windows
    max_batch: int = LIMITS.max_attribution_batch
