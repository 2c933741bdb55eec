"""Safe loading of user-supplied images into RGB pictures for the networks.

Every image that enters the app (an upload, a file on disk, a numpy array
from a data set, an image already in memory) goes through :func:`load_image`,
which returns a plain 8-bit RGB :class:`PIL.Image.Image` or refuses the input
with an :class:`InvalidImageError` whose message tells a person what was wrong
and what would be accepted.

Loading is bounded in time and memory: the byte size is checked before
anything is decoded, and the pixel dimensions are read from the file header
(``Image.open`` is lazy) and checked against :class:`ImageLimits` before the
pixels are decoded, so a small file that claims to be enormous (a
"decompression bomb") is refused without allocating its pixels. Decoding of
encoded bytes is serialised by a lock, so many simultaneous uploads still
need only one image's worth of decoding memory at a time.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from crmn_viz.limits import ImageLimits

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_IMAGE_LIMITS",
    "ImageLimits",
    "ImageSource",
    "InvalidImageError",
    "encode_png",
    "image_to_array",
    "load_image",
]

ImageSource = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
"""Anything :func:`load_image` accepts."""

ACCEPTED_FORMATS: tuple[str, ...] = (
    "PNG",
    "JPEG",
    "MPO",
    "GIF",
    "BMP",
    "TIFF",
    "WEBP",
    "PPM",
    "AVIF",
)
"""Raster formats Pillow is allowed to decode (MPO is the multi-picture JPEG that cameras write).

Restricting Pillow to these formats keeps exotic decoders away from untrusted
uploads. Formats the installed Pillow cannot read are skipped at run time.
"""

_logger = logging.getLogger(__name__)
_DECODE_LOCK = threading.Lock()

_ACCEPTED_DESCRIPTION = "a PNG, JPEG, GIF, BMP, TIFF, WebP or PPM raster image"


class InvalidImageError(ValueError):
    """The input cannot be used as an image; the message says why and what is accepted."""


DEFAULT_IMAGE_LIMITS = ImageLimits()
"""The limits :func:`load_image` applies when none are given (from :data:`crmn_viz.limits.LIMITS`)."""


def load_image(
    source: ImageSource,
    *,
    limits: ImageLimits | None = None,
    max_pixels: int | None = None,
    max_bytes: int | None = None,
) -> Image.Image:
    """Load an image from any supported source as an 8-bit RGB picture.

    The EXIF orientation is applied, so a portrait photo taken with a rotated
    camera comes back upright. Palette images are expanded, transparency is
    composited on white, CMYK is converted (through its ICC profile when it has
    one), 16-bit images are scaled to 8 bits (65535 -> 255) and only the first
    frame of an animation is kept (for a PIL image you pass: its current frame).

    Args:
        source: A filesystem path (``str`` or ``os.PathLike``), the encoded
            file as ``bytes``/``bytearray``/``memoryview``, a binary file-like
            object with ``read()``, a ``PIL.Image.Image``, or a numpy array of
            shape HxW, HxWx1, HxWx3 or HxWx4 with dtype uint8, uint16, bool or
            float (values in [0, 1]).
        limits: Size limits; :data:`DEFAULT_IMAGE_LIMITS` when omitted.
        max_pixels: Overrides ``limits.max_pixels`` for this call.
        max_bytes: Overrides ``limits.max_bytes`` for this call.

    Returns:
        A new, fully decoded ``PIL.Image.Image`` in mode ``"RGB"``; the input is
        never modified.

    Raises:
        InvalidImageError: The input is empty, too big, corrupt or truncated,
            not a raster image (HTML, PDF, SVG, text...), or its shape or
            aspect ratio is outside the limits.
    """
    active_limits = _resolve_limits(limits, max_pixels=max_pixels, max_bytes=max_bytes)
    if isinstance(source, Image.Image):
        return _pil_image_to_rgb(source, active_limits, label="The image", from_caller=True)
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source, active_limits)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _decode_bytes(bytes(source), active_limits, label="The uploaded data")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _decode_bytes(
            _read_path(path, active_limits),
            active_limits,
            label=f"The file {path.name!r}",
        )
    if hasattr(source, "read"):
        return _decode_bytes(
            _read_stream(source, active_limits),
            active_limits,
            label="The uploaded file",
        )
    raise InvalidImageError(
        f"Cannot load an image from a {type(source).__name__}. Give a file path, the file's bytes, "
        "an open binary file, a PIL image or a numpy array (HxW, HxWx3 or HxWx4)."
    )


def encode_png(image: Image.Image) -> bytes:
    """Canonical PNG bytes of a picture (no metadata, fixed compression level 6)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def image_to_array(source: ImageSource, *, limits: ImageLimits | None = None) -> np.ndarray:
    """Load an image with :func:`load_image` and return its pixels as a numpy array.

    Args:
        source: Anything :func:`load_image` accepts.
        limits: Size limits; :data:`DEFAULT_IMAGE_LIMITS` when omitted.

    Returns:
        A new, writable, C-contiguous ``uint8`` array of shape (height, width, 3).

    Raises:
        InvalidImageError: As :func:`load_image`.
    """
    return np.array(load_image(source, limits=limits), dtype=np.uint8, copy=True)


# --------------------------------------------------------------------------- limits


def _resolve_limits(
    limits: ImageLimits | None, *, max_pixels: int | None, max_bytes: int | None
) -> ImageLimits:
    base = limits if limits is not None else DEFAULT_IMAGE_LIMITS
    return ImageLimits(
        max_pixels=base.max_pixels if max_pixels is None else max_pixels,
        max_bytes=base.max_bytes if max_bytes is None else max_bytes,
        max_aspect_ratio=base.max_aspect_ratio,
    )


def _limits_description(limits: ImageLimits) -> str:
    return (
        f"Accepted: {_ACCEPTED_DESCRIPTION} of at most {_format_megapixels(limits.max_pixels)}, "
        f"{_format_megabytes(limits.max_bytes)} and a {limits.max_aspect_ratio:g}:1 aspect ratio."
    )


def _format_megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:g} megapixels" if pixels >= 100_000 else f"{pixels} pixels"


def _format_megabytes(num_bytes: int) -> str:
    if num_bytes < 100_000:
        return f"{num_bytes} bytes"
    return f"{num_bytes / 2**20:.3g} MB"


def _check_dimensions(width: int, height: int, limits: ImageLimits, label: str) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"{label} has no pixels ({width} x {height}). {_limits_description(limits)}")
    if width * height > limits.max_pixels:
        raise InvalidImageError(
            f"{label} is too large: {width} x {height} pixels "
            f"({_format_megapixels(width * height)}), more than the limit of "
            f"{_format_megapixels(limits.max_pixels)}. Resize it and try again. {_limits_description(limits)}"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect_ratio:
        raise InvalidImageError(
            f"{label} is too narrow to analyse: {width} x {height} pixels is a {ratio:.0f}:1 "
            f"aspect ratio, beyond {limits.max_aspect_ratio:g}:1. Crop it to a less extreme shape. "
            f"{_limits_description(limits)}"
        )


# --------------------------------------------------------------------------- reading bytes


def _read_path(path: Path, limits: ImageLimits) -> bytes:
    label = f"The file {path.name!r}"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidImageError(f"The file {str(path)!r} does not exist.") from None
    except OSError as exc:
        raise InvalidImageError(f"The file {str(path)!r} cannot be read: {exc.strerror or exc}.") from exc
    if path.is_dir():
        raise InvalidImageError(
            f"{str(path)!r} is a folder, not an image file. {_limits_description(limits)}"
        )
    if size > limits.max_bytes:
        raise _too_many_bytes(label, size, limits)
    try:
        with path.open("rb") as stream:
            data = stream.read(limits.max_bytes + 1)
    except OSError as exc:
        raise InvalidImageError(f"The file {str(path)!r} cannot be read: {exc.strerror or exc}.") from exc
    if len(data) > limits.max_bytes:  # the file grew after stat()
        raise _too_many_bytes(label, len(data), limits)
    return data


def _read_stream(stream: BinaryIO, limits: ImageLimits) -> bytes:
    try:
        data = stream.read(limits.max_bytes + 1)
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"The uploaded file cannot be read: {exc}.") from exc
    if isinstance(data, str):
        raise InvalidImageError(
            "The file was opened in text mode; open it in binary mode ('rb') so its bytes can be decoded."
        )
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(f"The file object returned {type(data).__name__} from read(), not bytes.")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes("The uploaded file", len(data), limits, at_least=True)
    return bytes(data)


def _too_many_bytes(
    label: str, size: int, limits: ImageLimits, *, at_least: bool = False
) -> InvalidImageError:
    prefix = "more than " if at_least else ""
    return InvalidImageError(
        f"{label} is too big: {prefix}{_format_megabytes(size)}, above the limit of "
        f"{_format_megabytes(limits.max_bytes)}. Save it at a smaller size or higher compression. "
        f"{_limits_description(limits)}"
    )


# --------------------------------------------------------------------------- decoding


def _allowed_pillow_formats() -> list[str]:
    Image.init()
    return [name for name in ACCEPTED_FORMATS if name in Image.OPEN]


def _decode_bytes(data: bytes, limits: ImageLimits, label: str) -> Image.Image:
    if not data:
        raise InvalidImageError(f"{label} is empty (0 bytes). {_limits_description(limits)}")
    if len(data) > limits.max_bytes:
        raise _too_many_bytes(label, len(data), limits)
    not_an_image = _describe_non_image(data[:2048])
    if not_an_image is not None:
        raise InvalidImageError(
            f"{label} is {not_an_image}, not a raster image. {_limits_description(limits)}"
        )

    # One decode at a time: peak memory stays at one image's worth however many
    # uploads arrive together, and the process-wide warning filters changed
    # below are not raced by another thread's decode.
    with _DECODE_LOCK, warnings.catch_warnings():
        # Pillow's own decompression-bomb guard warns (or raises) when a header
        # claims more pixels than Image.MAX_IMAGE_PIXELS; either is a refusal.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        # Decoder chatter about damaged metadata is summed up by our own error.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        try:
            image = Image.open(io.BytesIO(data), formats=_allowed_pillow_formats())
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(label, exc, limits) from None
        except Image.UnidentifiedImageError:
            raise InvalidImageError(
                f"{label} is not an image format this app can read (or the file is damaged). "
                f"{_limits_description(limits)}"
            ) from None
        except Exception as exc:  # untrusted bytes can trip any error in a decoder
            raise _corrupt(label, exc, limits) from exc
        try:
            with image:
                return _pil_image_to_rgb(image, limits, label=label, from_caller=False)
        except InvalidImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(label, exc, limits) from None
        except Exception as exc:  # truncated or corrupt pixel data
            raise _corrupt(label, exc, limits) from exc


def _bomb(label: str, exc: BaseException, limits: ImageLimits) -> InvalidImageError:
    claimed = re.search(r"\((\d+) pixels\)", str(exc))
    size = f" of {_format_megapixels(int(claimed.group(1)))}" if claimed else ""
    return InvalidImageError(
        f"{label} is too large: its header claims a size{size}, far above the limit of "
        f"{_format_megapixels(limits.max_pixels)} (a possible decompression bomb). It was "
        f"refused before decoding. {_limits_description(limits)}"
    )


def _corrupt(label: str, exc: BaseException, limits: ImageLimits) -> InvalidImageError:
    detail = str(exc).strip() or type(exc).__name__
    return InvalidImageError(
        f"{label} is damaged or incomplete and cannot be decoded ({detail}). "
        f"Try saving or downloading it again. {_limits_description(limits)}"
    )


def _describe_non_image(head: bytes) -> str | None:
    """Name well-known non-raster contents from the first bytes, or return None."""
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"%!PS"):
        return "a PostScript/EPS vector file"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file (perhaps a compressed SVG)"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (or an Office document)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<svg" in text and (text.startswith((b"<?xml", b"<svg", b"<!doctype svg", b"<!--"))):
        return "an SVG vector drawing (export it as PNG first)"
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        text.startswith(b"<") and b"<html" in text
    ):
        return "an HTML web page (perhaps the page was saved instead of the image)"
    if text.startswith(b"<?xml"):
        return "an XML document"
    if text.startswith((b"{", b"[")) and _looks_like_text(head):
        return "a JSON/text file"
    if _looks_like_text(head) and not head.startswith((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6", b"P7")):
        return "a text file"
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(character.isprintable() or character in "\r\n\t" for character in decoded)
    return printable >= 0.95 * len(decoded)


# --------------------------------------------------------------------------- conversion to RGB


def _pil_image_to_rgb(
    image: Image.Image, limits: ImageLimits, *, label: str, from_caller: bool
) -> Image.Image:
    """Check the header size, decode the current frame (the first for files we open) and convert."""
    width, height = image.size  # from the header: nothing decoded yet
    _check_dimensions(width, height, limits, label)
    if from_caller:
        try:
            image.load()
        except Exception as exc:  # a lazily opened, damaged file from the caller
            raise _corrupt(label, exc, limits) from exc
    else:
        image.load()
    rgb = _convert_to_rgb(_apply_exif_orientation(image))
    if rgb is image and from_caller:
        rgb = rgb.copy()  # never hand back (and let callers mutate) the caller's object
    return rgb


_EXIF_ORIENTATION_TAG = 0x0112


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    try:
        if image.getexif().get(_EXIF_ORIENTATION_TAG, 1) in (None, 1):
            return image
        return ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block must not reject good pixels
        _logger.debug("Ignoring an unreadable EXIF orientation", exc_info=True)
        return image


def _convert_to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return _sixteen_bit_to_rgb(image)
    if mode == "F":
        return _float_to_rgb(np.asarray(image, dtype=np.float64))
    if mode == "P":
        has_alpha = "transparency" in image.info or (
            image.palette is not None and image.palette.mode == "RGBA"
        )
        return _composite_on_white(image.convert("RGBA")) if has_alpha else image.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite_on_white(image.convert("RGBA"))
    if mode in ("L", "1") and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if mode == "CMYK":
        return _cmyk_to_rgb(image)
    return image.convert("RGB")


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _sixteen_bit_to_rgb(image: Image.Image) -> Image.Image:
    # Mode "I" (32-bit int) is how Pillow holds 16-bit PNG/TIFF data, so it is
    # read as 0..65535 like the I;16 modes; values outside are clipped.
    values = np.asarray(image)
    return _gray_or_rgb_array_to_image(_uint16_to_uint8(np.clip(values, 0, 65535)))


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
    # 65535 / 257 == 255 exactly, so full scale maps to full scale.
    return ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _float_to_rgb(values: np.ndarray) -> Image.Image:
    values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
    if values.size and values.max() > 1.0:
        values = values / 255.0  # a float image in 0..255 units
    return _gray_or_rgb_array_to_image(np.round(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8))


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    icc_profile = image.info.get("icc_profile")
    if icc_profile:
        try:
            from PIL import ImageCms

            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
            srgb_profile = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(image, source_profile, srgb_profile, outputMode="RGB")
            if converted is not None:
                return converted
        except Exception:  # a bad profile falls back to the plain formula
            _logger.debug("Ignoring an unusable CMYK ICC profile", exc_info=True)
    return image.convert("RGB")


def _gray_or_rgb_array_to_image(pixels: np.ndarray) -> Image.Image:
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, np.newaxis], 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(pixels))


def _array_to_rgb(array: np.ndarray, limits: ImageLimits) -> Image.Image:
    accepted = (
        "Accepted arrays: HxW, HxWx1, HxWx3 or HxWx4 of uint8, uint16, bool, or float with values in [0, 1]."
    )
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4):
            hint = " It looks channels-first (CxHxW); transpose it to HxWxC."
        raise InvalidImageError(f"The array has shape {array.shape}, which is not an image.{hint} {accepted}")
    height, width = array.shape[:2]
    _check_dimensions(width, height, limits, "The array")

    if array.dtype == np.uint8:
        pixels = array
    elif array.dtype == np.uint16:
        pixels = _uint16_to_uint8(array)
    elif array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise InvalidImageError(f"The array contains NaN or infinite values. {accepted}")
        low, high = float(array.min()), float(array.max())
        if low < 0.0 or high > 1.0:
            raise InvalidImageError(
                f"The float array has values from {low:g} to {high:g}; float images must lie in [0, 1]. "
                f"Divide by 255 (or convert to uint8) first. {accepted}"
            )
        pixels = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise InvalidImageError(f"The array has dtype {array.dtype}, which is not an image type. {accepted}")

    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return _composite_on_white(Image.fromarray(np.ascontiguousarray(pixels)))
    return _gray_or_rgb_array_to_image(pixels)
