"""Fixtures that write real image files (and real non-images) for the image loader tests."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
EXIF_ORIENTATION_TAG = 0x0112


def png_chunk(chunk_type: bytes, payload: bytes) -> bytes:
    """Return one PNG chunk with a correct CRC."""
    crc = zlib.crc32(chunk_type + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + chunk_type + payload + struct.pack(">I", crc)


def png_bomb_bytes(width: int, height: int, *, bit_depth: int = 1, color_type: int = 0) -> bytes:
    """Return a small but genuinely decodable all-zero PNG of ``width`` x ``height``.

    The zero rows are fed to zlib in slices, so a huge image costs a few MB of
    zeros once, never its full decoded size.
    """
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_slice = max(1, (4 << 20) // len(row))
    compressed = bytearray()
    remaining = height
    while remaining:
        count = min(rows_per_slice, remaining)
        compressed += compressor.compress(row * count)
        remaining -= count
    compressed += compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", bytes(compressed))
        + png_chunk(b"IEND", b"")
    )


def png_header_only_bytes(width: int, height: int) -> bytes:
    """Return a PNG whose header claims ``width`` x ``height`` but which holds almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def encode(image: Image.Image, image_format: str, **save_options: object) -> bytes:
    """Return ``image`` encoded in ``image_format``."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save_options)
    return buffer.getvalue()


# Pillow modes and the formats that can store each (the union the image tests need).
FORMATS_BY_MODE = {
    "1": ["PNG", "BMP", "TIFF", "GIF", "PPM"],
    "L": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM"],
    "P": ["PNG", "BMP", "TIFF", "GIF"],
    "RGB": ["PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP", "PPM"],
    "RGBA": ["PNG", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "CMYK": ["JPEG", "TIFF"],
    "I;16": ["PNG", "TIFF"],
    "I": ["TIFF"],
    "F": ["TIFF"],
}
IMAGE_MODES = list(FORMATS_BY_MODE)


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """A ``width x height`` picture of random pixels in Pillow ``mode`` (any of IMAGE_MODES)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    if mode == "I":
        return Image.fromarray(rng.integers(0, 65536, (height, width)).astype(np.int32))
    if mode == "F":
        return Image.fromarray(rng.random((height, width), dtype=np.float32))
    base = Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8))
    if mode == "P":
        return base.convert("RGB").quantize(16)
    return base.convert(mode)


@pytest.fixture
def encode_image() -> Callable[..., bytes]:
    """Return :func:`encode` (image, format, **save options) -> bytes."""
    return encode


@pytest.fixture
def make_png_bomb() -> Callable[..., bytes]:
    """Return :func:`png_bomb_bytes` (width, height) -> a small, decodable, huge PNG."""
    return png_bomb_bytes


@pytest.fixture
def make_png_header_only() -> Callable[[int, int], bytes]:
    """Return :func:`png_header_only_bytes` (width, height) -> a PNG header claiming that size."""
    return png_header_only_bytes


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, bytes], Path]:
    """Return a function that writes bytes to a named file in a temporary folder."""

    def write(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return write


@pytest.fixture
def quadrant_image() -> Image.Image:
    """A 40 x 20 RGB image whose top-left 10 x 10 block is red, the rest blue."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :] = BLUE
    pixels[:10, :10] = RED
    return Image.fromarray(pixels)


@pytest.fixture
def exif_rotated_jpeg(write_file, quadrant_image: Image.Image) -> Path:
    """A landscape 40 x 20 JPEG tagged EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = 6
    return write_file("rotated.jpg", encode(quadrant_image, "JPEG", quality=95, exif=exif.tobytes()))


@pytest.fixture
def animated_gif(write_file) -> Path:
    """A 3-frame 16 x 12 palette GIF: red, then green, then blue."""
    frames = [Image.new("RGB", (16, 12), colour).convert("P") for colour in (RED, GREEN, BLUE)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return write_file("animated.gif", buffer.getvalue())


@pytest.fixture
def sixteen_bit_png(write_file) -> Path:
    """A 4 x 1 16-bit grayscale PNG holding 0, 257, 32896 and 65535."""
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode == "I;16"
    return write_file("sixteen.png", encode(image, "PNG"))


@pytest.fixture
def cmyk_jpeg(write_file) -> Path:
    """A 16 x 16 pure-cyan CMYK JPEG."""
    return write_file("cmyk.jpg", encode(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), "JPEG", quality=95))


@pytest.fixture
def rgba_png(write_file) -> Path:
    """A 2 x 1 RGBA PNG: a half-transparent red pixel and a fully transparent black one."""
    image = Image.new("RGBA", (2, 1))
    image.putpixel((0, 0), (255, 0, 0, 128))
    image.putpixel((1, 0), (0, 0, 0, 0))
    return write_file("transparent.png", encode(image, "PNG"))


@pytest.fixture
def truncated_jpeg(write_file) -> Path:
    """A noisy 64 x 64 JPEG cut off half-way through its pixel data."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG")
    return write_file("truncated.jpg", data[: len(data) // 2])


@pytest.fixture
def html_named_png(write_file) -> Path:
    """An HTML error page saved under a .png name."""
    page = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not found</body></html>\n"
    return write_file("download.png", page)


@pytest.fixture
def minimal_pdf(write_file) -> Path:
    """A one-page PDF document."""
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return write_file("document.pdf", pdf)


@pytest.fixture
def svg_file(write_file) -> Path:
    """A small SVG vector drawing."""
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<rect width="10" height="10" fill="red"/></svg>\n'
    )
    return write_file("drawing.svg", svg)


@pytest.fixture
def data_root() -> Path:
    """The shared data folder: ``$CRMN_VIZ_DATA_DIR`` or ``../shared/data`` beside the repository."""
    from_environment = os.environ.get("CRMN_VIZ_DATA_DIR")
    return Path(from_environment) if from_environment else REPOSITORY_ROOT.parent / "shared" / "data"


@pytest.fixture
def face_photo(data_root: Path) -> Path:
    """A real JPEG photo from the faces68 data set (skips when the data is absent)."""
    folder = data_root / "faces68" / "images"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not photos:
        pytest.skip(f"no faces68 photos under {folder}; set CRMN_VIZ_DATA_DIR to the data folder")
    return photos[0]
