"""Property tests: arbitrary bytes never crash the loader, valid images always round-trip."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from crmn_viz.images import InvalidImageError, load_image

# Real magic numbers, so random tails reach deep into each decoder.
MAGIC_PREFIXES = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"P6\n",
]

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def load_or_refuse(data: bytes) -> None:
    """Load ``data``; only a clean RGB image or an InvalidImageError is acceptable."""
    try:
        loaded = load_image(data)
    except InvalidImageError as error:
        assert str(error)
    else:
        assert loaded.mode == "RGB"
        assert loaded.width >= 1 and loaded.height >= 1


@PROPERTY_SETTINGS
@given(prefix=st.sampled_from(MAGIC_PREFIXES), tail=st.binary(max_size=2048))
def test_random_bytes_only_ever_raise_invalid_image_error(prefix: bytes, tail: bytes) -> None:
    load_or_refuse(prefix + tail)


def _small_valid_files() -> dict[str, bytes]:
    noise = np.random.default_rng(1).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    picture = Image.fromarray(noise)
    files = {}
    for image_format in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buffer = io.BytesIO()
        picture.save(buffer, format=image_format)
        files[image_format] = buffer.getvalue()
    return files


SMALL_VALID_FILES = _small_valid_files()


@PROPERTY_SETTINGS
@given(
    image_format=st.sampled_from(sorted(SMALL_VALID_FILES)),
    edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_corrupted_real_files_only_ever_raise_invalid_image_error(
    image_format: str, edits: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(SMALL_VALID_FILES[image_format])
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % len(data)]
    load_or_refuse(bytes(data))


IMAGE_MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I;16", "I", "F"]
FORMATS_BY_MODE = {
    "1": ["PNG", "BMP", "TIFF", "GIF"],
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


def random_image(mode: str, width: int, height: int, seed: int) -> Image.Image:
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


@PROPERTY_SETTINGS
@given(
    mode=st.sampled_from(IMAGE_MODES),
    width=st.integers(1, 24),
    height=st.integers(1, 24),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_small_valid_images_round_trip_to_rgb_of_the_same_size(
    mode: str, width: int, height: int, seed: int, data: st.DataObject
) -> None:
    image = random_image(mode, width, height, seed)
    image_format = data.draw(st.sampled_from(FORMATS_BY_MODE[mode]), label="format")
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    loaded = load_image(buffer.getvalue())
    assert loaded.mode == "RGB"
    assert loaded.size == (width, height)
    from_memory = load_image(image)
    assert from_memory.mode == "RGB"
    assert from_memory.size == (width, height)


@PROPERTY_SETTINGS
@given(width=st.integers(1, 24), height=st.integers(1, 24), seed=st.integers(0, 2**16))
def test_lossless_rgb_pixels_survive_exactly(width: int, height: int, seed: int) -> None:
    image = random_image("RGB", width, height, seed)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(np.asarray(load_image(buffer.getvalue())), np.asarray(image))
