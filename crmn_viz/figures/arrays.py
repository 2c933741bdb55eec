"""Input conversions shared by the figure builders: tensors to numpy, images to RGB, colours.

The figure builders accept whatever the rest of crmn_viz hands out (``torch.Tensor``
values of a :class:`~crmn_viz.tracing.Trace`, numpy arrays, PIL images) and turn them
into plain numpy arrays here, so every builder treats its inputs the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_rgb_uint8", "check_index", "rgba", "to_numpy"]


def to_numpy(value: Any, dtype: type | np.dtype | None = np.float64) -> np.ndarray:
    """Return ``value`` as a numpy array (detached, on the CPU for tensors).

    Args:
        value: A ``torch.Tensor``, numpy array, PIL image or nested sequence.
        dtype: Target dtype (``None`` keeps the source dtype).

    Returns:
        A numpy array; a new array whenever a conversion was needed.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor, without importing torch
        tensor = value.detach().cpu()
        if str(tensor.dtype) in ("torch.bfloat16", "torch.float16"):
            tensor = tensor.float()
        array = tensor.numpy()
    else:
        array = np.asarray(value)
    return array if dtype is None else array.astype(dtype, copy=False)


def check_index(index: int, size: int, what: str) -> int:
    """Validate a (possibly negative) index into ``size`` entries and make it non-negative.

    Args:
        index: The index; negative values count from the end, as in Python.
        size: Number of entries.
        what: Name used in the error message (e.g. ``"image_index"``).

    Returns:
        The index in ``0 .. size - 1``.

    Raises:
        ValueError: The index is out of range.
    """
    if not -size <= int(index) < size:
        raise ValueError(f"{what} {index} is out of range for {size} entries")
    return int(index) % size


def as_rgb_uint8(image: Any) -> np.ndarray:
    """Return an image as a displayable 8-bit RGB array [H, W, 3].

    Accepted layouts: ``[H, W]`` (grey), ``[H, W, 1|3|4]`` (channels last; alpha is
    dropped) and ``[1|3, H, W]`` (channels first, as the networks take them), from a
    numpy array, a ``torch.Tensor`` or a PIL image. Values: ``uint8`` is used as it is;
    booleans become 0/255; floats within [0, 1] are scaled by 255; any other range
    (e.g. a normalised network input) is min-max rescaled to 0..255 for display only.

    Args:
        image: The image.

    Returns:
        A new ``uint8`` array [H, W, 3].

    Raises:
        ValueError: The array does not have one of the accepted layouts.
    """
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):
        image = np.asarray(image.convert("RGB"))  # PIL image
    array = to_numpy(image, dtype=None)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise ValueError(
            f"an image must be [H, W], [H, W, 1|3|4] or [1|3, H, W]; got shape {tuple(array.shape)}"
        )
    array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return array.copy()
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    values = array.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if low >= 0.0 and high <= 1.0:
        scaled = values
    elif high > low:
        scaled = (values - low) / (high - low)
    else:
        scaled = np.zeros_like(values)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def rgba(colour: str, alpha: float) -> str:
    """Return a ``#RRGGBB`` colour as a CSS ``rgba(r,g,b,alpha)`` string.

    Args:
        colour: A hex colour such as ``"#0072B2"``.
        alpha: Opacity in [0, 1].

    Returns:
        For example ``"rgba(0,114,178,0.25)"``.
    """
    text = colour.lstrip("#")
    if len(text) != 6:
        raise ValueError(f"expected a #RRGGBB colour, got {colour!r}")
    red, green, blue = (int(text[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha:g})"
