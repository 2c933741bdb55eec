"""Every way an uploaded image can be wrong, through ``load_image`` and the app's upload path.

Each case runs twice: through :func:`crmn_viz.images.load_image` and through
:func:`crmn_viz.inputs.uploads.decode_image_uploads` (what the Streamlit app and its
camera input call with the browser's ``(name, bytes)``). A file is either handled correctly
(an RGB picture with the right size and colours) or refused with an
:class:`~crmn_viz.images.InvalidImageError` whose message names the problem; the upload path
reports the refusal as ``"<safe name>: <message>"`` and never raises.

Decompression bombs and files claiming huge dimensions are checked by memory, not time: the
meter of ``conftest.py`` (Pillow's block allocator, ``tracemalloc`` and the peak resident set
size) must stay far below what the full image would need, and a control test shows the same
meter does register a genuine large decode.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from crmn_viz.images import InvalidImageError, load_image
from crmn_viz.inputs.selection import MAX_SIDE
from crmn_viz.inputs.uploads import UPLOAD_IMAGE_LIMITS, decode_image_uploads
from tests.images.conftest import (
    FORMATS_BY_MODE,
    encode,
    png_bomb_bytes,
    png_chunk,
    png_header_only_bytes,
    random_image,
)
from tests.robustness.conftest import MiB, measure_memory

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)

Loader = Callable[[str, bytes], Image.Image]


def via_load_image(name: str, data: bytes) -> Image.Image:
    """The core loader, as the Gradio demo and the CLI use it."""
    del name
    return load_image(data)


def via_upload(name: str, data: bytes) -> Image.Image:
    """The app's upload path; a refusal comes back as a message, turned into the same error here."""
    result = decode_image_uploads([(name, data)])
    assert len(result.images) + len(result.errors) == 1, "one file gives one image or one message"
    if result.errors:
        message = result.errors[0]
        assert ": " in message and message.split(": ", 1)[1], "the message names the file, then the reason"
        raise InvalidImageError(message)
    image = result.images[0]
    assert image.source == "upload"
    return image.image()


LOADERS = {"load_image": via_load_image, "upload": via_upload}


@pytest.fixture(params=list(LOADERS))
def loader(request: pytest.FixtureRequest) -> Loader:
    """Both entry points, one after the other."""
    return LOADERS[request.param]


def refusal(loader: Loader, name: str, data: bytes) -> str:
    """The message of the InvalidImageError that ``loader`` must raise."""
    with pytest.raises(InvalidImageError) as caught:
        loader(name, data)
    message = str(caught.value)
    assert len(message) > 30, f"a refusal must explain itself, got {message!r}"
    return message


# --------------------------------------------------------------------------- files made here


def quadrants(size: tuple[int, int] = (40, 20)) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    width, height = size
    image = Image.new("RGB", size, (255, 255, 255))
    image.paste(RED, (0, 0, width // 2, height // 2))
    image.paste(GREEN, (width // 2, 0, width, height // 2))
    image.paste(BLUE, (0, height // 2, width // 2, height))
    return image


def png(size: tuple[int, int] = (40, 20), colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    return encode(Image.new("RGB", size, colour), "PNG")


def with_png_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` (CRC fixed), pixel data unchanged."""
    patched = bytearray(data)
    patched[16:24] = struct.pack(">II", width, height)
    patched[29:33] = struct.pack(">I", zlib.crc32(bytes(patched[12:29])) & 0xFFFFFFFF)
    return bytes(patched)


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 frame header claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (10, 20, 30)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_claiming(width: int, height: int) -> bytes:
    """A small GIF whose logical screen claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("P", (8, 8), 3), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    """A small BMP whose info header claims ``width`` x ``height``."""
    data = bytearray(encode(Image.new("RGB", (8, 8), (10, 20, 30)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def text_chunk_bomb(chunk_type: bytes) -> bytes:
    """A valid 8 x 8 PNG carrying a compressed text/ICC chunk that inflates to 200 MiB."""
    inflated = zlib.compress(b"\0" * (200 * MiB), 9)
    payload = {
        b"zTXt": b"Comment\0\0" + inflated,
        b"iTXt": b"Comment\0\x01\x00\0\0" + inflated,
        b"iCCP": b"icc\0\0" + inflated,
    }[chunk_type]
    base = png((8, 8))
    return base[:33] + png_chunk(chunk_type, payload) + base[33:]


def exif_rotated_jpeg(orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(quadrants((40, 20)), "JPEG", quality=95, exif=exif.tobytes())


def animated_gif(frames: int = 3) -> bytes:
    colours = [RED, GREEN, BLUE]
    images = [Image.new("RGB", (16, 12), colours[k % 3]) for k in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=40, loop=0)


def close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(int(a) - int(b)) <= tolerance for a, b in zip(actual, expected))


# --------------------------------------------------------------------------- refused files

MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
)
NOISE = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
ICON = encode(Image.new("RGB", (16, 16)), "ICO")
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<script>alert(1)</script><rect width="10" height="10"/></svg>'
)
HTML = b"<!DOCTYPE html><html><head><title>cat</title></head><body><img src='cat.png'></body></html>"

REFUSED = {
    "empty": ("empty.png", b"", "empty"),
    "truncated png": ("cut.png", png((64, 64))[:60], "damaged"),
    "truncated jpeg": (
        "cut.jpg",
        encode(NOISE, "JPEG")[:600],
        "damaged",
    ),
    "html posing as png": ("cat.png", HTML, "HTML"),
    "pdf posing as jpeg": ("photo.jpg", MINIMAL_PDF, "PDF"),
    "svg posing as png": ("logo.png", SVG, "SVG"),
    "gzip (svgz) posing as png": ("logo.png", gzip.compress(SVG), "gzip"),
    "zip posing as png": ("photo.png", b"PK\x03\x04" + b"\0" * 40, "ZIP"),
    "postscript posing as png": ("figure.png", EPS, "PostScript"),
    "text posing as jpeg": ("notes.jpg", b"just some notes about cats and dogs\n" * 4, "text"),
    "json posing as png": ("data.png", b'{"pixels": [1, 2, 3]}', "JSON"),
    "icon format (not accepted)": ("icon.png", ICON, "not an image format"),
    "1 x 51 strip": ("strip.png", png((1, 51)), "aspect ratio"),
    "5000 x 2 strip": ("banner.png", png((5000, 2)), "aspect ratio"),
    "png claiming 0 x 0": ("blank.png", with_png_size(png((1, 1)), 0, 0), "damaged"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_files_are_refused_with_a_reason(loader: Loader, case: str) -> None:
    name, data, words = REFUSED[case]
    message = refusal(loader, name, data)
    assert words.lower() in message.lower(), message
    assert "Accepted" in message or "accepted" in message, "the message says what would be accepted"


def test_upload_messages_start_with_a_safe_file_name() -> None:
    hostile = ["../../etc/<b>cat</b>.png", "C:\\Users\\x\\evil.jpg", "<script>alert(1)</script>.png"]
    result = decode_image_uploads([(name, HTML) for name in hostile])
    assert not result.images
    names = [message.split(": ", 1)[0] for message in result.errors]
    assert names[1] == "evil.jpg", names
    for name in names:
        assert name and not set(name) & set("/\\<>\0"), name


# --------------------------------------------------------------------------- bombs and huge dimensions

BOMB_SIDE = 30_000  # 900 megapixels: 900 MiB as 8-bit grey, 3.4 GiB as RGBA
MEMORY_BOUND = 64 * MiB


@pytest.fixture(scope="module")
def real_bomb() -> bytes:
    """A genuinely decodable all-zero 1-bit PNG of 30000 x 30000 pixels (about 110 kB)."""
    return png_bomb_bytes(BOMB_SIDE, BOMB_SIDE)


HUGE_HEADERS: dict[str, Callable[[], tuple[str, bytes]]] = {
    "png claiming 100000 x 100000": lambda: ("huge.png", png_header_only_bytes(100_000, 100_000)),
    "png claiming 10000 x 10000": lambda: ("big.png", png_header_only_bytes(10_000, 10_000)),
    "jpeg claiming 65000 x 65000": lambda: ("huge.jpg", jpeg_claiming(65_000, 65_000)),
    "jpeg claiming 9000 x 9000": lambda: ("big.jpg", jpeg_claiming(9_000, 9_000)),
    "gif claiming 65535 x 65535": lambda: ("huge.gif", gif_claiming(65_535, 65_535)),
    "bmp claiming 100000 x 100000": lambda: ("huge.bmp", bmp_claiming(100_000, 100_000)),
}


def test_decompression_bomb_is_refused_without_allocating_the_image(loader: Loader, real_bomb: bytes) -> None:
    use, outcome = measure_memory(lambda: loader("bomb.png", real_bomb))
    assert isinstance(outcome, InvalidImageError), outcome
    assert "too large" in str(outcome) and "decompression bomb" in str(outcome)
    use.assert_below(MEMORY_BOUND, "refusing a 900-megapixel bomb")


def test_bomb_within_pillows_own_limit_but_above_ours_is_refused_before_decoding(loader: Loader) -> None:
    side = 8_000  # 64 megapixels: under Pillow's 178 MP bomb error, above the 40 / 25 MP limits
    data = png_bomb_bytes(side, side)
    use, outcome = measure_memory(lambda: loader("big.png", data))
    assert isinstance(outcome, InvalidImageError), outcome
    assert "8000 x 8000" in str(outcome) and "too large" in str(outcome)
    use.assert_below(MEMORY_BOUND, "refusing a 64-megapixel image")


@pytest.mark.parametrize("case", list(HUGE_HEADERS))
def test_huge_dimensions_are_refused_from_the_header(loader: Loader, case: str) -> None:
    name, data = HUGE_HEADERS[case]()
    use, outcome = measure_memory(lambda: loader(name, data))
    assert isinstance(outcome, InvalidImageError), outcome
    assert "too large" in str(outcome), outcome
    use.assert_below(MEMORY_BOUND, case)


@pytest.mark.parametrize("chunk_type", [b"zTXt", b"iTXt", b"iCCP"])
def test_compressed_text_chunk_bombs_are_refused(loader: Loader, chunk_type: bytes) -> None:
    data = text_chunk_bomb(chunk_type)
    use, outcome = measure_memory(lambda: loader("text.png", data))
    assert isinstance(outcome, InvalidImageError), outcome
    assert "too large" in str(outcome).lower() or "damaged" in str(outcome)
    use.assert_below(MEMORY_BOUND, f"a {chunk_type.decode()} chunk inflating to 200 MiB")


def test_the_memory_meter_sees_a_genuine_large_decode() -> None:
    """Control: a 30-megapixel image that is allowed does register well above the bound above."""
    side = (6_000, 5_000)
    data = png_bomb_bytes(*side)
    use, outcome = measure_memory(lambda: load_image(data))
    assert isinstance(outcome, Image.Image) and outcome.size == side
    # 30 MB of 1-bit pixels (one byte each in Pillow) plus 120 MB of RGBX: far above the bound.
    # (The RSS gauge is not asserted here: memory freed by earlier tests may be reused resident.)
    assert use.pillow_bytes >= 100 * MiB, use
    assert use.largest > 2 * MEMORY_BOUND


def test_a_large_allowed_upload_is_downscaled_within_the_upload_limits() -> None:
    side = (6_000, 4_000)  # 24 megapixels: just under the 25 MP upload limit
    assert side[0] * side[1] <= UPLOAD_IMAGE_LIMITS.max_pixels
    picture = via_upload("wide.png", png_bomb_bytes(*side, bit_depth=8))
    assert max(picture.size) == MAX_SIDE and picture.size == (MAX_SIDE, round(MAX_SIDE * 4 / 6))
    message = refusal(via_upload, "bigger.png", png_header_only_bytes(6_000, 4_500))
    assert "27 megapixels" in message and "25 megapixels" in message


# --------------------------------------------------------------------------- files handled correctly


def test_wrong_extension_is_ignored_the_content_decides(loader: Loader) -> None:
    mislabelled = (("photo.png", "JPEG"), ("photo.jpg", "PNG"), ("photo", "GIF"), ("x.exe", "BMP"))
    for name, image_format in mislabelled:
        picture = loader(name, encode(quadrants(), image_format))
        assert picture.mode == "RGB" and picture.size == (40, 20)
        assert close(picture.getpixel((2, 2)), RED, 40), (name, picture.getpixel((2, 2)))


def test_sixteen_bit_images_are_scaled_to_eight_bits(loader: Loader) -> None:
    values = np.array([[0, 257 * 128], [65535, 65535]], dtype=np.uint16)
    picture = loader("deep.png", encode(Image.fromarray(values), "PNG"))
    assert picture.mode == "RGB"
    assert [picture.getpixel(xy) for xy in ((0, 0), (1, 0), (0, 1))] == [(0, 0, 0), (128,) * 3, (255,) * 3]


def test_cmyk_jpeg_becomes_rgb(loader: Loader) -> None:
    picture = loader("print.jpg", encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert picture.mode == "RGB"
    red, green, blue = picture.getpixel((8, 8))
    assert red > 200 and green < 60 and blue < 60


def test_palette_with_transparency_is_composited_on_white(loader: Loader) -> None:
    palette_image = Image.new("P", (4, 4), 0)
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putpixel((0, 0), 1)
    picture = loader("icon.png", encode(palette_image, "PNG", transparency=1))
    assert picture.getpixel((0, 0)) == (255, 255, 255)
    assert picture.getpixel((1, 1)) == RED


def test_animated_gif_gives_its_first_frame(loader: Loader) -> None:
    picture = loader("anim.gif", animated_gif(frames=50))
    assert picture.size == (16, 12) and close(picture.getpixel((4, 4)), RED)


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"])
def test_one_by_one_images_load(loader: Loader, image_format: str) -> None:
    data = encode(Image.new("RGB", (1, 1), (250, 10, 10)), image_format)
    picture = loader(f"dot.{image_format.lower()}", data)
    assert picture.mode == "RGB" and picture.size == (1, 1)
    assert close(picture.getpixel((0, 0)), (250, 10, 10), 40)


def test_exif_rotation_is_applied(loader: Loader) -> None:
    picture = loader("portrait.jpg", exif_rotated_jpeg(orientation=6))
    assert picture.size == (20, 40), "orientation 6: rotate 90 degrees clockwise"
    assert close(picture.getpixel((17, 2)), RED, 40), "red top-left ends up top-right"


def test_a_broken_exif_block_does_not_refuse_good_pixels(loader: Loader) -> None:
    data = bytearray(exif_rotated_jpeg(orientation=6))
    start = data.index(b"Exif\0\0")
    data[start + 6 : start + 14] = b"MM\0*\xff\xff\xff\xff"  # IFD offset far beyond the block
    picture = loader("odd.jpg", bytes(data))
    assert picture.mode == "RGB" and sorted(picture.size) == [20, 40]


def test_extreme_but_allowed_shapes_are_analysed(loader: Loader) -> None:
    """1 x 1 and 1 x 50 pictures survive the whole way to a classification."""
    from crmn_viz.analysis import classify
    from tests.conftest import tiny_model

    model = tiny_model("resnet", num_outputs=3, input_size=16)
    pictures = [loader(f"{size}.png", png(size)) for size in ((1, 1), (1, 50), (50, 1))]
    assert [picture.size for picture in pictures] == [(1, 1), (1, 50), (50, 1)]
    results = classify(model, pictures, top_k=3)
    assert len(results) == 3
    assert all(abs(sum(p for _, p in ranked) - 1.0) < 1e-4 for ranked in results)


def test_uploaded_names_never_reach_the_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    evil = ["../../evil.png", "/tmp/evil.png", "..\\..\\evil.png", "evil\0.png", "a/" * 200 + "evil.png"]
    result = decode_image_uploads([(name, png()) for name in evil])
    assert len(result.images) == len(evil) and not result.errors
    for image in result.images:
        assert image.name and not set(image.name) & set("/\\\0"), image.name
    assert not list(tmp_path.rglob("*")), "decoding an upload writes no file"
    assert not Path("/tmp/evil.png").exists()


def test_too_many_images_in_one_upload_are_refused_with_a_message() -> None:
    from crmn_viz.inputs.uploads import MAX_IMAGES_PER_UPLOAD

    files = [(f"img{k}.png", png((4, 4))) for k in range(MAX_IMAGES_PER_UPLOAD + 3)]
    result = decode_image_uploads(files)
    assert len(result.images) == MAX_IMAGES_PER_UPLOAD
    assert len(result.errors) == 3 and all("at most" in message for message in result.errors)


# --------------------------------------------------------------------------- properties

SIGNATURES = [
    b"",
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff\xe0",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"P6\n",
    b"%PDF",
    b"<svg",
]  # real magic numbers, so random tails reach deep into each decoder
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome_of(loader: Loader, data: bytes) -> Image.Image | None:
    """The picture, or None after a proper refusal; any other exception fails the test."""
    try:
        picture = loader("fuzz.png", data)
    except InvalidImageError as err:
        assert str(err)
        return None
    assert isinstance(picture, Image.Image) and picture.mode == "RGB"
    assert picture.width >= 1 and picture.height >= 1
    return picture


@PROPERTY_SETTINGS
@given(prefix=st.sampled_from(SIGNATURES), tail=st.binary(max_size=2048))
def test_random_bytes_are_decoded_or_refused_by_both_paths(prefix: bytes, tail: bytes) -> None:
    data = prefix + tail
    for loader in LOADERS.values():
        outcome_of(loader, data)


def _valid_files() -> list[bytes]:
    """Small real files: flat quadrants and random noise, in every common format."""
    pictures = (quadrants((12, 9)), random_image("RGB", 9, 12, seed=1))
    formats = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")
    return [encode(picture, image_format) for picture in pictures for image_format in formats]


VALID_FILES = _valid_files()


@PROPERTY_SETTINGS
@given(
    which=st.integers(0, len(VALID_FILES) - 1),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(min_value=0)),
)
def test_corrupted_real_files_are_decoded_or_refused_by_both_paths(
    which: int, flips: list[tuple[int, int]], cut: int | None
) -> None:
    data = bytearray(VALID_FILES[which])
    for position, value in flips:
        data[position % len(data)] = value
    corrupted = bytes(data[: cut % (len(data) + 1)] if cut is not None else data)
    for loader in LOADERS.values():
        outcome_of(loader, corrupted)


@PROPERTY_SETTINGS
@given(
    mode_and_format=st.sampled_from([(m, f) for m, formats in FORMATS_BY_MODE.items() for f in formats]),
    width=st.integers(1, 48),
    height=st.integers(1, 48),
    seed=st.integers(0, 2**16),
)
def test_random_valid_images_load_as_rgb_of_the_same_size_by_both_paths(
    mode_and_format: tuple[str, str], width: int, height: int, seed: int
) -> None:
    mode, image_format = mode_and_format
    source = random_image(mode, width, height, seed)
    assert source.mode == mode
    data = encode(source, image_format)
    for loader in LOADERS.values():
        picture = loader("random.img", data)
        assert picture.mode == "RGB" and picture.size == (width, height), (mode, image_format, picture.size)


def test_in_memory_sources_of_the_loader_are_bounded_too() -> None:
    """Streams and numpy arrays obey the same limits as bytes."""
    from_stream = refusal(lambda _n, d: load_image(io.BytesIO(d)), "x", png_header_only_bytes(10_000, 10_000))
    assert "too large" in from_stream
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (10_000, 10_000), (0, 0)))
