"""Gradio demo: handlers on real images, then the served app through gradio_client.

Hostile files (not images, damaged, decompression bombs, ...) go through every handler, the
Blocks API and the served app: each gets the app's own message, starting with the file's name,
and no server path.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import os
import socket
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

import crmn_viz
from crmn_viz.frontends import gradio_app
from crmn_viz.limits import LIMITS
from tests.conftest import tiny_model

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Tiny checkpoints of each kind in a private zoo folder."""
    folder = tmp_path_factory.mktemp("zoo")
    norm3 = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    crmn_viz.save(
        tiny_model("crmn", num_outputs=10, input_size=32),
        folder / "crmn-tiny",
        dataset="cifar10",
        class_names=CIFAR_CLASSES,
        normalization=norm3,
    )
    crmn_viz.save(
        tiny_model("renet", num_outputs=10, input_size=32),
        folder / "renet-tiny",
        dataset="cifar10",
        class_names=CIFAR_CLASSES,
        normalization=norm3,
    )
    crmn_viz.save(
        tiny_model("crmn", task="keypoints", num_outputs=136, pool=4, input_size=80),
        folder / "faces-tiny",
        dataset="faces68",
        normalization=norm3,
    )
    old = os.environ.get("CRMN_VIZ_CHECKPOINT_DIR")
    os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = str(folder)
    gradio_app.cached_model.cache_clear()
    yield folder
    gradio_app.cached_model.cache_clear()
    if old is None:
        os.environ.pop("CRMN_VIZ_CHECKPOINT_DIR", None)
    else:
        os.environ["CRMN_VIZ_CHECKPOINT_DIR"] = old


@pytest.fixture(scope="module")
def cifar_image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("img") / "cat.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return str(path)


def face_photo() -> str:
    images = SHARED / "faces68" / "images"
    if not images.exists():
        pytest.skip("faces68 data not found")
    return str(sorted(images.iterdir())[0])


def test_classify_handler_returns_probabilities_and_stepwise_figure(zoo, cifar_image):
    probabilities, figure = gradio_app.classify_handler(cifar_image, "crmn-tiny", 3)
    assert len(probabilities) == 3 and set(probabilities) <= set(CIFAR_CLASSES)
    assert abs(sum(probabilities.values())) <= 1.0 + 1e-6
    assert figure is not None and len(figure.data) >= 1


def test_gate_and_sweep_handlers_refuse_the_wrong_architecture(zoo, cifar_image):
    assert gradio_app.gate_handler(cifar_image, "crmn-tiny", "forget_gate").data
    assert gradio_app.sweeps_handler(cifar_image, "renet-tiny", 0, "pca").data
    with pytest.raises(gr.Error, match="CRMN"):
        gradio_app.gate_handler(cifar_image, "renet-tiny", "forget_gate")
    with pytest.raises(gr.Error, match="ReNet"):
        gradio_app.sweeps_handler(cifar_image, "crmn-tiny", 0, "pca")


def test_bad_uploads_give_readable_errors(zoo, tmp_path):
    html = tmp_path / "page.png"
    html.write_text("<html><body>not an image</body></html>")
    with pytest.raises(gr.Error) as info:
        gradio_app.classify_handler(str(html), "crmn-tiny", 3)
    assert "image" in str(info.value).lower()
    with pytest.raises(gr.Error, match="upload an image"):
        gradio_app.classify_handler(None, "crmn-tiny", 3)


def test_keypoints_handler_on_a_real_face(zoo):
    figure, faces, *_ = gradio_app.keypoints_handler(face_photo(), "faces-tiny")  # + table, note, menu
    assert len(faces) >= 1 and np.asarray(faces[0]).shape == (68, 2)
    assert figure.data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_demo_answers_gradio_client_on_every_api(zoo, cifar_image):
    from gradio_client import Client, handle_file

    demo = gradio_app.build_demo()
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=True
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        label, _ = client.predict(handle_file(cifar_image), "crmn-tiny", 3, api_name="/classify")
        assert label["label"] in CIFAR_CLASSES
        _, details = client.predict(
            handle_file(cifar_image), "crmn-tiny", "saliency", -1, 8, api_name="/attribute"
        )
        assert details["method"]
        _, points, *_ = client.predict(handle_file(face_photo()), "faces-tiny", api_name="/keypoints")
        assert np.asarray(points[0]).shape == (68, 2)
        sliver = Path(cifar_image).with_name("sliver.png")  # decodes, but 1 x 200 is refused by load_image
        Image.new("RGB", (200, 1)).save(sliver)
        with pytest.raises(Exception, match="aspect ratio"):
            client.predict(handle_file(str(sliver)), "crmn-tiny", 3, api_name="/classify")
        bad = Path(cifar_image).with_name("bad.png")
        bad.write_bytes(b"%PDF-1.4 not an image")
        with pytest.raises(Exception, match="(?i)image"):
            client.predict(handle_file(str(bad)), "crmn-tiny", 3, api_name="/classify")
        label, _ = client.predict(handle_file(cifar_image), "crmn-tiny", 3, api_name="/classify")
        assert label["label"] in CIFAR_CLASSES  # still serving after the bad uploads
    finally:
        demo.close()


# --------------------------------------------------------------------------- hostile files


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (the pixel data is never there)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def valid_png() -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("picture.png", valid_png())
    return buffer.getvalue()


SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"></svg>'

HOSTILE = {
    # file name: (contents, what the app's message says)
    "empty.png": (b"", "is empty (0 bytes)"),
    "notes.png": (b"Just some notes, saved as text and renamed.\n" * 20, "a text file, not a raster image"),
    "page.png": (b"<!DOCTYPE html><html><body><img src=cat.png></body></html>", "an HTML web page"),
    "paper.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Type/Catalog>>endobj\n", "a PDF document"),
    "drawing.png": (SVG, "an SVG vector drawing"),
    "drawing.svg": (SVG, "an SVG vector drawing"),
    "drawing.svgz": (gzip.compress(SVG), "gzip-compressed"),
    "archive.png": (zip_bytes(), "a ZIP archive"),
    "truncated.png": (valid_png()[:300], "damaged or incomplete"),
    "noise.jpg": (
        bytes(np.random.default_rng(2).integers(0, 256, 4096, dtype=np.uint8)),
        "not an image format",
    ),
    "bomb.png": (png_claiming(100_000, 100_000), "decompression bomb"),
    "huge.png": (png_claiming(6_000, 5_000), "is too large: 6000 x 5000 pixels"),
    "sliver.png": (png_claiming(2_000, 10), "too narrow"),
}

SERVER_PATHS = ("/tmp", tempfile.gettempdir(), "gradio/", "\\")
"""Nothing that looks like a folder of the server may appear in a message."""


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hostile")
    for name, (data, _) in HOSTILE.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in HOSTILE}


def assert_app_message(message: str, name: str) -> None:
    """The app's refusal: the base name first, the reason, what is accepted, and no server path."""
    assert message.startswith(f"{name}: "), message
    assert HOSTILE[name][1] in message, message
    assert "Accepted: a PNG, JPEG" in message, message
    for path in SERVER_PATHS:
        assert path not in message, message
    assert "ComponentProcessingError" not in message and "Traceback" not in message


def call_handler(endpoint: str, image) -> None:  # type: ignore[no-untyped-def]
    handlers = {
        "classify": lambda: gradio_app.classify_handler(image, "crmn-tiny", 3),
        "gates": lambda: gradio_app.gate_handler(image, "crmn-tiny", "forget_gate"),
        "sweeps": lambda: gradio_app.sweeps_handler(image, "renet-tiny", 0, "pca"),
        "attribute": lambda: gradio_app.attribute_handler(image, "crmn-tiny", "saliency", -1, 8),
        "keypoints": lambda: gradio_app.keypoints_handler(image, "faces-tiny"),
    }
    handlers[endpoint]()


ENDPOINTS = ["classify", "gates", "sweeps", "attribute", "keypoints"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_every_handler_refuses_hostile_files_with_the_app_message(zoo, hostile_files, name, endpoint):
    with pytest.raises(gr.Error) as info:
        call_handler(endpoint, str(hostile_files[name]))
    assert_app_message(info.value.message, name)
    with pytest.raises(gr.Error) as info:  # the value an image input hands over
        call_handler(endpoint, (name, hostile_files[name].read_bytes()))
    assert_app_message(info.value.message, name)


def test_handlers_refuse_a_missing_image_and_an_unreadable_file(zoo, tmp_path):
    with pytest.raises(gr.Error, match="upload an image first"):
        gradio_app.sweeps_handler(None, "renet-tiny", 0, "pca")
    with pytest.raises(gr.Error) as info:
        gradio_app.classify_handler(str(tmp_path / "gone.png"), "crmn-tiny", 3)
    assert "could not be read" in info.value.message and str(tmp_path) not in info.value.message


def image_inputs(demo: gr.Blocks) -> list[gr.components.Component]:
    return [block for fn in demo.fns.values() for block in fn.inputs if isinstance(block, gr.Image)]


def test_every_image_input_hands_over_the_raw_upload(demo, tmp_path):
    inputs = image_inputs(demo)
    apis = {fn.api_name for fn in demo.fns.values() if any(isinstance(b, gr.Image) for b in fn.inputs)}
    assert set(ENDPOINTS) <= apis
    assert inputs and all(isinstance(block, gradio_app.UploadedImage) for block in inputs)
    assert {block.get_block_name() for block in inputs} == {"image"}  # drawn by Gradio's image widget
    assert not Path(gradio_app.__file__).with_suffix(".pyi").exists()  # Gradio wrote no stub
    html = tmp_path / "stored-name.png"
    html.write_bytes(HOSTILE["page.png"][0])
    payload = gr.data_classes.ImageData(path=str(html), orig_name="C:\\Users\\me\\page.png")
    name, data = inputs[0].preprocess(payload)  # no PIL, no error: the bytes as uploaded
    assert data == HOSTILE["page.png"][0] and name.endswith("page.png")
    assert inputs[0].preprocess(None) is None
    with pytest.raises(gr.Error) as info:
        gradio_app.classify_handler((name, data), "crmn-tiny", 3)
    assert info.value.message.startswith("page.png: ")  # the folder the browser sent is dropped


def run_api(demo: gr.Blocks, api_name: str, inputs: list) -> dict:  # type: ignore[type-arg]
    from gradio.state_holder import SessionState

    fn = next(fn for fn in demo.fns.values() if fn.api_name == api_name)
    return asyncio.run(demo.process_api(fn, inputs, state=SessionState(demo)))


def file_payload(path: Path, orig_name: str | None = None) -> dict:  # type: ignore[type-arg]
    return {"path": str(path), "orig_name": orig_name or path.name, "meta": {"_type": "gradio.FileData"}}


@pytest.fixture(scope="module")
def demo(zoo) -> gr.Blocks:
    return gradio_app.build_demo()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_blocks_api_refuses_hostile_files_with_the_app_message(demo, hostile_files, name):
    with pytest.raises(gr.Error) as info:
        run_api(demo, "classify", [file_payload(hostile_files[name]), "crmn-tiny", 3])
    assert_app_message(info.value.message, name)


def test_blocks_api_decodes_data_urls_with_the_same_checks(demo):
    def data_url(data: bytes, media: str = "image/png") -> dict:  # type: ignore[type-arg]
        encoded = base64.b64encode(data).decode()
        return {"url": f"data:{media};base64,{encoded}", "meta": {"_type": "gradio.FileData"}}

    result = run_api(demo, "classify", [data_url(valid_png()), "crmn-tiny", 3])
    assert result["data"][0]["label"] in CIFAR_CLASSES
    for name in ("page.png", "paper.png", "bomb.png"):
        with pytest.raises(gr.Error) as info:
            run_api(demo, "classify", [{**data_url(HOSTILE[name][0]), "orig_name": name}, "crmn-tiny", 3])
        assert_app_message(info.value.message, name)
    with pytest.raises(gr.Error, match="upload an image first"):
        run_api(demo, "classify", [None, "crmn-tiny", 3])


@pytest.fixture(scope="module")
def served(zoo):
    """The demo served on a local port as ``main`` serves it, and a client for it."""
    from gradio_client import Client

    demo = gradio_app.build_demo()
    port = free_port()
    demo.queue().launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        max_file_size=LIMITS.max_image_bytes,
    )
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


ARGUMENTS = {
    "classify": ("crmn-tiny", 3),
    "gates": ("crmn-tiny", "forget_gate"),
    "sweeps": ("renet-tiny", 0, "pca"),
    "attribute": ("crmn-tiny", "saliency", -1, 8),
    "keypoints": ("faces-tiny",),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_served_demo_refuses_hostile_files_on_every_api(served, hostile_files, endpoint):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    for name, path in hostile_files.items():
        with pytest.raises(AppError) as info:
            served.predict(handle_file(str(path)), *ARGUMENTS[endpoint], api_name=f"/{endpoint}")
        assert_app_message(str(info.value), name)


def test_served_demo_refuses_a_file_over_the_upload_limit_with_its_size(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    big = tmp_path / "big.png"
    size = min(LIMITS.upload_image_limits().max_bytes + 2**20, LIMITS.max_image_bytes)
    big.write_bytes(valid_png() + b"\0" * (size - len(valid_png())))
    if size <= LIMITS.upload_image_limits().max_bytes:
        pytest.skip("the upload limit is not below Gradio's own upload cap here")
    with pytest.raises(AppError) as info:
        served.predict(handle_file(str(big)), "crmn-tiny", 3, api_name="/classify")
    message = str(info.value)
    assert message.startswith("big.png: ") and "is too big" in message and "/tmp" not in message


def test_served_examples_still_load_and_leave_the_checks_in_place(served, hostile_files):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    if not gradio_app._gallery_examples("cifar10"):
        pytest.skip("no gallery images")
    example = served.predict(0, api_name="/load_example")
    path = example["value"] if isinstance(example, dict) else example
    label, _ = served.predict(handle_file(path), "crmn-tiny", 3, api_name="/classify")
    assert label["label"] in CIFAR_CLASSES
    # Loading an example rebuilt the session's image input: it must still hand over raw bytes.
    with pytest.raises(AppError) as info:
        served.predict(handle_file(str(hostile_files["notes.png"])), "crmn-tiny", 3, api_name="/classify")
    assert_app_message(str(info.value), "notes.png")


# --------------------------------------------------------------------------- downloads with provenance


def _zip_members(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_every_download_names_its_checkpoint_and_carries_its_provenance(zoo, cifar_image):
    import hashlib
    import json

    from crmn_viz.figures import browser_available, read_provenance

    image_sha256 = hashlib.sha256(Path(cifar_image).read_bytes()).hexdigest()
    cases = [
        ("crmn-tiny", gradio_app.gate_files_handler(cifar_image, "crmn-tiny", "input_gate"), "input_gate"),
        ("crmn-tiny", gradio_app.classify_files_handler(cifar_image, "crmn-tiny", 3), None),
        ("renet-tiny", gradio_app.sweeps_files_handler(cifar_image, "renet-tiny", 1, "pca"), None),
        ("crmn-tiny", gradio_app.attribute_files_handler(cifar_image, "crmn-tiny", "saliency", 2), None),
    ]
    for checkpoint, path, quantity in cases:
        assert Path(path).name.startswith(f"{checkpoint}__")
        members = _zip_members(path)
        (meta_name,) = [name for name in members if name.endswith(".meta.json")]
        provenance = json.loads(members[meta_name])["provenance"]
        assert provenance["checkpoint"] == checkpoint
        weights = hashlib.sha256((zoo / f"{checkpoint}.safetensors").read_bytes()).hexdigest()
        assert provenance["weights_sha256"] == weights
        assert provenance["images"] == [{"name": "cat.png", "sha256": image_sha256}]
        if quantity:
            assert provenance["settings"]["quantity"] == quantity
        assert any(".data." in name for name in members), "the numbers go with the figure"
        picture = next(n for n in members if n.endswith((".png", ".html")) and ".data." not in n)
        assert read_provenance(members[picture], picture.rsplit(".", 1)[-1]) == provenance
        if browser_available():
            assert any(name.endswith(".pdf") for name in members)
    attribution = json.loads(
        next(v for k, v in _zip_members(cases[3][1]).items() if k.endswith(".meta.json"))
    )["provenance"]["settings"]
    assert attribution["method"] == "saliency" and "class 2" in attribution["target"]


def test_only_zoo_checkpoints_can_be_named(zoo, cifar_image, tmp_path):
    with pytest.raises(gr.Error, match="not a checkpoint of this app's zoo"):
        gradio_app.classify_handler(cifar_image, str(zoo / "crmn-tiny"), 3)
    with pytest.raises(gr.Error, match="not a checkpoint"):
        gradio_app.gate_handler(cifar_image, "/etc/passwd", "forget_gate")


def test_the_demo_draws_wide_figures_with_readable_choices(zoo, cifar_image):
    figure = gradio_app.gate_handler(cifar_image, "crmn-tiny", "forget_gate")
    assert figure.layout.width >= gradio_app.PLOT_WIDTH
    overlay, _ = gradio_app.attribute_handler(cifar_image, "crmn-tiny", "saliency", -1, 8)
    assert overlay.layout.width >= gradio_app.PLOT_WIDTH
    assert overlay.data[0].source.startswith("data:image/png"), "pictures go out as PNG (sharp pixels)"
    config = gradio_app.build_demo().config
    choices = {
        component["props"].get("label"): [list(choice) for choice in component["props"].get("choices") or []]
        for component in config["components"]
        if component.get("type") == "dropdown"
    }
    assert ["forget gate f", "forget_gate"] in choices["Quantity"]
    assert ["Integrated gradients", "integrated_gradients"] in choices["Method"]
    assert ["layer 0", 0] in choices["Layer"]


def test_the_attribution_check_handler_shows_curves_and_the_randomisation_test(zoo, cifar_image):
    curves, sanity, summary = gradio_app.attribution_check_handler(
        cifar_image, "crmn-tiny", "saliency", -1, 32, "cascading"
    )
    assert isinstance(curves, go.Figure) and isinstance(sanity, go.Figure)
    assert [entry["curve"] for entry in summary["curves"]][:2] == [
        "deletion (most_relevant_first)",
        "insertion (most_relevant_first)",
    ]
    assert summary["randomisation"]["stages"][0] == "output"
    assert len(summary["randomisation"]["spearman"]) == len(summary["randomisation"]["stages"])
    assert summary["random_logit"] is not None
    with pytest.raises(gr.Error, match="cascading"):
        gradio_app.attribution_check_handler(cifar_image, "crmn-tiny", "saliency", -1, 32, "sideways")
    with pytest.raises(gr.Error, match="Choose one of"):
        gradio_app.attribution_check_handler(cifar_image, "crmn-tiny", "magic", -1, 32, "cascading")
