"""Tests for crmn_viz.images.load_image on real files of every kind, good and bad."""

from __future__ import annotations

import dataclasses
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crmn_viz.images import (
    DEFAULT_IMAGE_LIMITS,
    ImageLimits,
    InvalidImageError,
    image_to_array,
    load_image,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
# Colour tolerance for lossy JPEG round trips.
JPEG_TOLERANCE = 40


def assert_close_colour(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 2) -> None:
    assert all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True)), (actual, expected)


def assert_rgb(image: Image.Image, size: tuple[int, int]) -> None:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == size


# --------------------------------------------------------------------------- sources


def test_png_loads_from_every_kind_of_source(write_file, quadrant_image: Image.Image, encode_image) -> None:
    data = encode_image(quadrant_image, "PNG")
    path = write_file("plain.png", data)
    expected = np.asarray(quadrant_image)
    with path.open("rb") as stream:
        from_stream = load_image(stream)
    sources = [path, str(path), data, bytearray(data), memoryview(data), io.BytesIO(data)]
    for loaded in [*map(load_image, sources), from_stream]:
        assert_rgb(loaded, (40, 20))
        np.testing.assert_array_equal(np.asarray(loaded), expected)


def test_pil_image_source_is_converted_without_touching_the_original() -> None:
    original = Image.new("RGBA", (3, 2), (0, 0, 255, 255))
    loaded = load_image(original)
    assert_rgb(loaded, (3, 2))
    assert loaded is not original
    assert original.mode == "RGBA"
    rgb_original = Image.new("RGB", (3, 2), RED)
    copy = load_image(rgb_original)
    assert copy is not rgb_original
    copy.putpixel((0, 0), BLUE)
    assert rgb_original.getpixel((0, 0)) == RED


def test_real_face_photo_loads(face_photo: Path) -> None:
    with Image.open(face_photo) as reference:
        expected_size = reference.size
    loaded = load_image(face_photo)
    assert_rgb(loaded, expected_size)
    assert np.asarray(loaded).std() > 5  # a real picture, not a blank


def test_image_to_array_returns_writable_uint8_hwc(
    write_file, quadrant_image: Image.Image, encode_image
) -> None:
    pixels = image_to_array(write_file("a.png", encode_image(quadrant_image, "PNG")))
    assert pixels.dtype == np.uint8
    assert pixels.shape == (20, 40, 3)
    assert pixels.flags.writeable and pixels.flags.c_contiguous
    assert tuple(pixels[0, 0]) == RED
    assert tuple(pixels[-1, -1]) == BLUE


# --------------------------------------------------------------------------- modes and formats


def test_exif_orientation_is_applied(exif_rotated_jpeg: Path) -> None:
    loaded = load_image(exif_rotated_jpeg)
    # Stored 40 wide x 20 high; orientation 6 shows it rotated 90 degrees clockwise.
    assert_rgb(loaded, (20, 40))
    pixels = np.asarray(loaded).astype(int)
    # The red block stored top-left ends up top-right after a clockwise turn.
    top_right = tuple(pixels[2:8, -8:-2].reshape(-1, 3).mean(axis=0).round().astype(int))
    top_left = tuple(pixels[2:8, 2:8].reshape(-1, 3).mean(axis=0).round().astype(int))
    assert_close_colour(top_right, RED, JPEG_TOLERANCE)
    assert_close_colour(top_left, BLUE, JPEG_TOLERANCE)


def test_animated_gif_gives_first_frame(animated_gif: Path) -> None:
    loaded = load_image(animated_gif)
    assert_rgb(loaded, (16, 12))
    assert loaded.getpixel((8, 6)) == RED


def test_sixteen_bit_png_is_scaled_to_eight_bits(sixteen_bit_png: Path) -> None:
    loaded = load_image(sixteen_bit_png)
    assert_rgb(loaded, (4, 1))
    assert [loaded.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0),
        (1, 1, 1),
        (128, 128, 128),
        (255, 255, 255),
    ]


def test_mode_i_image_is_read_as_sixteen_bit() -> None:
    image = Image.fromarray(np.array([[0, 65535, 70000, -5]], dtype=np.int32))
    assert image.mode == "I"
    loaded = load_image(image)
    assert [loaded.getpixel((x, 0))[0] for x in range(4)] == [0, 255, 255, 0]


def test_cmyk_jpeg_is_converted_to_rgb(cmyk_jpeg: Path) -> None:
    with Image.open(cmyk_jpeg) as raw:
        assert raw.mode == "CMYK"
    loaded = load_image(cmyk_jpeg)
    assert_rgb(loaded, (16, 16))
    assert_close_colour(loaded.getpixel((8, 8)), (0, 255, 255), JPEG_TOLERANCE)


def test_transparency_is_composited_on_white(rgba_png: Path) -> None:
    loaded = load_image(rgba_png)
    assert_rgb(loaded, (2, 1))
    assert_close_colour(loaded.getpixel((0, 0)), (255, 127, 127), tolerance=1)
    assert loaded.getpixel((1, 0)) == (255, 255, 255)


def test_grey_alpha_and_palette_transparency_are_composited_on_white(write_file, encode_image) -> None:
    grey_alpha = Image.new("LA", (2, 2), (0, 0))  # black, fully transparent
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0])
    for name, image, options in [
        ("la.png", grey_alpha, {}),
        ("palette.png", palette, {"transparency": 1}),
        ("palette.gif", palette, {"transparency": 1}),
    ]:
        loaded = load_image(write_file(name, encode_image(image, name.rsplit(".", 1)[1].upper(), **options)))
        assert loaded.getpixel((0, 0)) == (255, 255, 255), name


def test_opaque_palette_and_bilevel_images(write_file, encode_image) -> None:
    palette = Image.new("P", (3, 3), 2)
    palette.putpalette([0, 0, 0, 0, 0, 0, 10, 200, 30])
    assert load_image(write_file("p.png", encode_image(palette, "PNG"))).getpixel((1, 1)) == (10, 200, 30)
    bilevel = Image.new("1", (5, 5), 1)
    assert load_image(write_file("b.bmp", encode_image(bilevel, "BMP"))).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM"])
def test_one_by_one_pixel_in_each_format(image_format: str, encode_image) -> None:
    loaded = load_image(encode_image(Image.new("RGB", (1, 1), (200, 200, 200)), image_format))
    assert_rgb(loaded, (1, 1))
    assert_close_colour(loaded.getpixel((0, 0)), (200, 200, 200), tolerance=8)


# --------------------------------------------------------------------------- numpy arrays


@pytest.mark.parametrize(
    ("array", "expected_top_left"),
    [
        (np.full((2, 3), 7, dtype=np.uint8), (7, 7, 7)),
        (np.full((2, 3, 1), 9, dtype=np.uint8), (9, 9, 9)),
        (np.full((2, 3, 3), (1, 2, 3), dtype=np.uint8), (1, 2, 3)),
        (np.full((2, 3, 4), (255, 0, 0, 0), dtype=np.uint8), (255, 255, 255)),
        (np.full((2, 3), 65535, dtype=np.uint16), (255, 255, 255)),
        (np.full((2, 3, 3), 0.5, dtype=np.float32), (128, 128, 128)),
        (np.ones((2, 3), dtype=bool), (255, 255, 255)),
    ],
    ids=["gray", "gray1", "rgb", "rgba", "uint16", "float", "bool"],
)
def test_numpy_arrays(array: np.ndarray, expected_top_left: tuple[int, int, int]) -> None:
    loaded = load_image(array)
    assert_rgb(loaded, (3, 2))
    assert loaded.getpixel((0, 0)) == expected_top_left


@pytest.mark.parametrize(
    ("array", "expected_words"),
    [
        (np.zeros((3, 8, 8), dtype=np.uint8), "channels-first"),
        (np.zeros((8, 8, 2), dtype=np.uint8), "shape"),
        (np.zeros((2, 2, 2, 2), dtype=np.uint8), "shape"),
        (np.full((4, 4), 2.0), "[0, 1]"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((4, 4), dtype=np.int64), "dtype"),
        (np.zeros((0, 4), dtype=np.uint8), "no pixels"),
    ],
    ids=["chw", "two-channels", "4d", "float-range", "nan", "int64", "empty"],
)
def test_bad_numpy_arrays_are_refused(array: np.ndarray, expected_words: str) -> None:
    with pytest.raises(InvalidImageError, match="Accepted") as caught:
        load_image(array)
    assert expected_words in str(caught.value)


# --------------------------------------------------------------------------- refusals


def refusal_message(source: object, **limits: int) -> str:
    with pytest.raises(InvalidImageError) as caught:
        load_image(source, **limits)
    message = str(caught.value)
    assert "Accepted" in message or "does not exist" in message or "binary mode" in message, message
    return message


def test_truncated_jpeg_is_refused(truncated_jpeg: Path) -> None:
    message = refusal_message(truncated_jpeg)
    assert "damaged or incomplete" in message
    assert "truncated.jpg" in message


def test_html_saved_as_png_is_refused(html_named_png: Path) -> None:
    assert "HTML" in refusal_message(html_named_png)


def test_pdf_is_refused(minimal_pdf: Path) -> None:
    assert "PDF" in refusal_message(minimal_pdf)


def test_svg_is_refused(svg_file: Path) -> None:
    assert "SVG vector" in refusal_message(svg_file)


@pytest.mark.parametrize(
    ("data", "expected_words"),
    [
        (b"hello, this is a plain text note\n", "text file"),
        (b'{"image": "not really"}', "JSON"),
        (b"PK\x03\x04" + bytes(40), "ZIP"),
        (b"\x1f\x8b\x08" + bytes(40), "gzip"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n", "PostScript"),
        (bytes(range(256)) * 4, "not an image format"),
        (b"\x89PNG\r\n\x1a\n" + bytes(30), "not an image format"),
    ],
    ids=["text", "json", "zip", "gzip", "eps", "binary-noise", "broken-png"],
)
def test_non_images_are_refused(data: bytes, expected_words: str) -> None:
    assert expected_words in refusal_message(data)


@pytest.mark.parametrize("empty", [b"", io.BytesIO(b"")], ids=["bytes", "stream"])
def test_empty_input_is_refused(empty: object) -> None:
    assert "empty" in refusal_message(empty)


def test_empty_file_and_missing_file_are_refused(write_file, tmp_path: Path) -> None:
    assert "empty" in refusal_message(write_file("empty.png", b""))
    assert "does not exist" in refusal_message(tmp_path / "missing.png")
    assert "folder" in refusal_message(tmp_path)


def test_text_mode_stream_is_refused() -> None:
    assert "binary mode" in refusal_message(io.StringIO("abc"))


def test_unsupported_source_type_is_refused() -> None:
    with pytest.raises(InvalidImageError, match="Cannot load an image from a int"):
        load_image(42)  # type: ignore[arg-type]


def test_header_claiming_ten_gigapixels_is_refused_without_decoding(write_file, make_png_header_only) -> None:
    bomb = write_file("bomb.png", make_png_header_only(100_000, 100_000))
    assert bomb.stat().st_size < 200
    started = time.perf_counter()
    message = refusal_message(bomb)
    assert time.perf_counter() - started < 2.0
    assert "enormous" in message or "too large" in message


def test_real_decompression_bomb_is_refused(write_file, make_png_bomb) -> None:
    # 20000 x 20000 = 400 megapixels of valid, all-zero, 1-bit data in a few tens of kB:
    # beyond Pillow's own bomb limit as well as ours.
    bomb = write_file("zeros.png", make_png_bomb(20_000, 20_000))
    assert bomb.stat().st_size < 200_000
    message = refusal_message(bomb)
    assert "enormous" in message or "too large" in message


def test_image_above_max_pixels_is_refused_before_decoding(write_file, make_png_header_only) -> None:
    # 7000 x 7000 = 49 megapixels: under Pillow's limit, over the app's default 40.
    bomb = write_file("big.png", make_png_header_only(7000, 7000))
    message = refusal_message(bomb)
    assert "7000 x 7000" in message and "49 megapixels" in message and "40 megapixels" in message
    assert "too large" in refusal_message(Image.new("L", (50, 50)), max_pixels=2499)
    assert_rgb(load_image(Image.new("L", (50, 50)), max_pixels=2500), (50, 50))


def test_bytes_over_max_bytes_are_refused(write_file, quadrant_image: Image.Image, encode_image) -> None:
    data = encode_image(quadrant_image, "BMP")
    path = write_file("big.bmp", data)
    limit = len(data) - 1
    for source in (path, data, io.BytesIO(data)):
        assert "too big" in refusal_message(source, max_bytes=limit)
    assert_rgb(load_image(path, max_bytes=len(data)), (40, 20))
    assert_rgb(load_image(io.BytesIO(data), limits=ImageLimits(max_bytes=len(data))), (40, 20))


def test_extreme_aspect_ratio_is_refused(encode_image) -> None:
    assert_rgb(load_image(Image.new("RGB", (50, 1))), (50, 1))
    assert "aspect ratio" in refusal_message(Image.new("RGB", (1, 51)))
    assert "aspect ratio" in refusal_message(encode_image(Image.new("RGB", (200, 2)), "PNG"))
    relaxed = ImageLimits(max_aspect_ratio=200)
    assert_rgb(load_image(encode_image(Image.new("RGB", (200, 2)), "PNG"), limits=relaxed), (200, 2))


def test_truncated_lazily_opened_pil_image_is_refused(truncated_jpeg: Path) -> None:
    with Image.open(truncated_jpeg) as lazy:
        assert "damaged or incomplete" in refusal_message(lazy)


# --------------------------------------------------------------------------- limits


def test_image_limits_defaults_and_validation() -> None:
    assert ImageLimits() == DEFAULT_IMAGE_LIMITS
    assert DEFAULT_IMAGE_LIMITS.max_pixels == 40_000_000
    assert DEFAULT_IMAGE_LIMITS.max_bytes == 20 * 1024 * 1024
    assert DEFAULT_IMAGE_LIMITS.max_aspect_ratio == 50
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_IMAGE_LIMITS.max_pixels = 1  # type: ignore[misc]
    for bad in ({"max_pixels": 0}, {"max_bytes": 0}, {"max_aspect_ratio": 0.5}):
        with pytest.raises(ValueError, match="must be at least 1"):
            ImageLimits(**bad)


def test_parallel_loads_and_warning_filters_are_left_as_found(write_file, encode_image) -> None:
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    paths = [
        write_file(f"parallel_{index}.png", encode_image(Image.new("RGB", (30 + index, 20), RED), "PNG"))
        for index in range(6)
    ]

    def load_or_error(source: object) -> object:
        try:
            return load_image(source)
        except InvalidImageError as error:
            return error

    filters_before = list(warnings.filters)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(load_or_error, [*paths, b"", b"not an image at all"], timeout=60))
    assert [image.size for image in results[:6]] == [(30 + index, 20) for index in range(6)]
    assert all(isinstance(result, InvalidImageError) for result in results[6:])
    assert warnings.filters == filters_before
