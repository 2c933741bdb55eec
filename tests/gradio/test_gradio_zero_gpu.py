"""The Gradio demo on Hugging Face ZeroGPU: handlers that run a network go through ``spaces.GPU``
when the ``spaces`` package is importable, and are registered as they are when it is not."""

from __future__ import annotations

import asyncio
import base64
import io
import sys

import numpy as np
import pytest
from PIL import Image

import crmn_viz
from crmn_viz.frontends import gradio_app
from tests.conftest import tiny_model
from tests.test_devices import fake_spaces

CLASSES = [f"class {k}" for k in range(10)]
NETWORK_HANDLERS = {
    "classify": "classify_handler",
    "gates": "gate_handler",
    "attribute": "attribute_handler",
    "classify_files": "classify_files_handler",
    "gates_files": "gate_files_handler",
    "sweeps": "sweeps_handler",
    "sweeps_files": "sweeps_files_handler",
    "attribute_files": "attribute_files_handler",
    "keypoints": "keypoints_handler",
    "keypoints_files": "keypoints_files_handler",
}


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    norm = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    for name in ("crmn-a", "crmn-b"):
        crmn_viz.save(
            tiny_model("crmn", num_outputs=10, input_size=32),
            tmp_path / name,
            dataset="cifar10",
            class_names=CLASSES,
            normalization=norm,
        )
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(tmp_path))
    gradio_app.cached_model.cache_clear()
    yield tmp_path
    gradio_app.cached_model.cache_clear()


def handler_of(demo, api_name: str):  # type: ignore[no-untyped-def]
    return next(fn for fn in demo.fns.values() if fn.api_name == api_name)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return buffer.getvalue()


def classify_through_the_api(demo) -> dict:  # type: ignore[no-untyped-def,type-arg]
    from gradio.state_holder import SessionState

    payload = {
        "url": "data:image/png;base64," + base64.b64encode(png()).decode(),
        "meta": {"_type": "gradio.FileData"},
    }
    fn = handler_of(demo, "classify")
    return asyncio.run(demo.process_api(fn, [payload, "crmn-a", 3], state=SessionState(demo)))


def test_with_spaces_every_network_handler_runs_under_spaces_gpu(zoo, monkeypatch):
    spaces = fake_spaces(monkeypatch)
    demo = gradio_app.build_demo()
    wrapped = [name for name, _ in spaces.wrapped]
    assert set(NETWORK_HANDLERS.values()) <= set(wrapped) and len(wrapped) == len(set(wrapped))
    for api_name, handler in NETWORK_HANDLERS.items():
        registered = handler_of(demo, api_name).fn
        assert registered is not getattr(gradio_app, handler)
        assert registered.__wrapped__ is getattr(gradio_app, handler), api_name
    # The zoo was loaded once at start-up, in this process, before any GPU call.
    assert gradio_app.cached_model.cache_info().currsize == 2
    result = classify_through_the_api(demo)
    assert result["data"][0]["label"] in CLASSES
    assert gradio_app.cached_model.cache_info().misses == 2  # the call found the preloaded model


def test_without_spaces_the_handlers_are_registered_as_they_are(zoo, monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)
    assert gradio_app.prepare_gpu() is False
    demo = gradio_app.build_demo()
    for api_name, handler in NETWORK_HANDLERS.items():
        assert handler_of(demo, api_name).fn is getattr(gradio_app, handler), api_name
    assert gradio_app.cached_model.cache_info().currsize == 0  # nothing loaded before it is asked for
    assert classify_through_the_api(demo)["data"][0]["label"] in CLASSES
