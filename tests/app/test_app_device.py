"""The app's sidebar says where the model runs; the device is decided by crmn_viz.devices (faked here)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from crmn_viz import devices

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def run_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    return at


def sidebar_text(elements) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(element.value) for element in elements)


def test_the_sidebar_names_the_device_and_the_variable_that_chose_it(zoo, monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: True)  # a GPU "is there"...
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cpu")  # ...and the variable keeps the CPU
    at = run_app()
    assert f"Runs on **CPU** (`{devices.DEVICE_VARIABLE}`)" in sidebar_text(at.sidebar.caption)
    model = at.session_state["selection"].model
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_a_gpu_that_is_not_there_is_said_in_the_sidebar(zoo, monkeypatch):
    monkeypatch.setattr(devices, "cuda_available", lambda: False)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cuda")
    at = run_app()
    errors = sidebar_text(at.sidebar.error)
    assert devices.DEVICE_VARIABLE in errors and "no CUDA GPU" in errors
    assert "Runs on" not in sidebar_text(at.sidebar.caption)
