"""Gradio demo: handlers on real images, then the served app through gradio_client."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

import crmn_viz
from crmn_viz import gradio_app
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
    figure, faces = gradio_app.keypoints_handler(face_photo(), "faces-tiny")
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
        _, points = client.predict(handle_file(face_photo()), "faces-tiny", api_name="/keypoints")
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
