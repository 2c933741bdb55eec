"""Where the networks run: the device decisions, tested on any machine by faking the CUDA query.

``crmn_viz.devices.cuda_available`` is the library's one CUDA query, so replacing it decides what
``select_device``, ``crmn_viz.load`` and the front ends believe. The ``spaces`` package (Hugging
Face ZeroGPU) is faked through ``sys.modules``.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crmn_viz
from crmn_viz import devices
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.views import memory, streams, sweeps
from crmn_viz.views.compute import DirectCompute
from crmn_viz.views.running import describe_device
from tests.conftest import tiny_model

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_device_variable(monkeypatch):
    monkeypatch.delenv(devices.DEVICE_VARIABLE, raising=False)


def fake_cuda(monkeypatch, present: bool) -> None:
    monkeypatch.setattr(devices, "cuda_available", lambda: present)


# --------------------------------------------------------------------------- select_device


@pytest.mark.parametrize(("present", "expected"), [(True, "cuda"), (False, "cpu")])
def test_auto_is_cuda_exactly_when_the_cuda_query_says_so(monkeypatch, present, expected):
    fake_cuda(monkeypatch, present)
    assert devices.select_device() == torch.device(expected)
    assert devices.select_device("auto") == torch.device(expected)
    assert devices.select_device(None) == torch.device(expected)


@pytest.mark.parametrize(("value", "expected"), [("cpu", "cpu"), ("cuda", "cuda"), (" cuda:1 ", "cuda:1")])
def test_the_variable_decides_auto(monkeypatch, value, expected):
    fake_cuda(monkeypatch, True)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, value)
    assert devices.select_device() == torch.device(expected)
    assert devices.device_override() == value.strip()


@pytest.mark.parametrize("value", ["", "auto", "AUTO"])
def test_an_empty_or_auto_variable_leaves_the_choice_to_the_query(monkeypatch, value):
    fake_cuda(monkeypatch, False)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, value)
    assert devices.device_override() is None
    assert devices.select_device() == torch.device("cpu")


def test_an_explicit_device_wins_over_the_variable(monkeypatch):
    fake_cuda(monkeypatch, False)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cuda")
    assert devices.select_device("cpu") == torch.device("cpu")
    assert devices.select_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_where_there_is_none_is_refused_and_the_message_names_who_asked(monkeypatch):
    fake_cuda(monkeypatch, False)
    with pytest.raises(devices.DeviceError, match="no CUDA GPU") as explicit:
        devices.select_device("cuda")
    assert devices.DEVICE_VARIABLE not in str(explicit.value)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cuda:0")
    with pytest.raises(devices.DeviceError, match=f"{devices.DEVICE_VARIABLE}='cuda:0'.*unset"):
        devices.select_device()


@pytest.mark.parametrize("value", ["gpu0", "meta", "tpu", "cuda:x"])
def test_unknown_devices_are_refused_with_the_choices(monkeypatch, value):
    fake_cuda(monkeypatch, True)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, value)
    with pytest.raises(devices.DeviceError, match=f"{devices.DEVICE_VARIABLE}=.*cpu, cuda or cuda:N"):
        devices.select_device()
    with pytest.raises(devices.DeviceError, match="device=.*cpu, cuda or cuda:N"):
        devices.select_device(value)


def test_describe_device_names_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU 80GB")
    assert devices.describe_device("cuda") == "CUDA (Fake GPU 80GB)"
    assert devices.describe_device(torch.device("cpu")) == "CPU"
    assert describe_device(tiny_model("resnet")) == "CPU"


# --------------------------------------------------------------------------- load


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny-resnet"
    crmn_viz.save(tiny_model("resnet"), path, dataset="cifar10")
    return path


def test_load_follows_the_variable_over_a_present_gpu(monkeypatch, saved):
    fake_cuda(monkeypatch, True)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cpu")
    model = crmn_viz.load(saved)
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_load_goes_to_cuda_when_the_query_says_a_gpu_is_there(monkeypatch, saved):
    fake_cuda(monkeypatch, True)
    if torch.cuda.is_available():
        assert {p.device.type for p in crmn_viz.load(saved).parameters()} == {"cuda"}
    else:  # the fake says yes, PyTorch cannot: the move to CUDA is what fails
        with pytest.raises((AssertionError, RuntimeError), match="(?i)cuda|nvidia|driver"):
            crmn_viz.load(saved)


def test_load_refuses_a_missing_gpu_before_reading_any_file(monkeypatch, tmp_path):
    fake_cuda(monkeypatch, False)
    monkeypatch.setenv(devices.DEVICE_VARIABLE, "cuda")
    with pytest.raises(devices.DeviceError, match=devices.DEVICE_VARIABLE):
        crmn_viz.load(tmp_path / "does-not-exist")  # not a CheckpointError: the device is checked first


# --------------------------------------------------------------------------- what comes back


def picture(seed: int, size: int = 32) -> SelectedImage:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return SelectedImage.from_bytes(f"image{seed}.png", buffer.getvalue())


class RecordingCompute(DirectCompute):
    """Runs the network like the views' default, recording which trace names each view asks for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, ...] | None] = []

    def trace(self, model, images, names=None):  # type: ignore[no-untyped-def]
        self.asked.append(None if names is None else tuple(names))
        return super().trace(model, images, names)


def test_the_sweep_views_bring_back_only_what_they_draw():
    model = tiny_model("renet", num_outputs=10, input_size=32)
    compute = RecordingCompute()
    assert sweeps.renet_sweeps(model, [picture(0)], 0, 1, "pca", None, compute).figure.data
    assert sweeps.renet_context_reach(model, [picture(0)], 0, 0, 1, 1, compute).figure.data
    expected = {f"layers.{k}.{d}" for k in range(model.block_count) for d in (*model.sweep_names, "out")}
    assert compute.asked == [tuple(sweeps.sweep_trace_names(model))] * 2
    assert set(compute.asked[0]) == expected
    every = set(model.trace_names())
    assert every - expected, "the gates and the rest stay where the network ran"


def test_the_stream_views_bring_back_only_the_two_streams():
    model = tiny_model("rir", num_outputs=10, input_size=32)
    compute = RecordingCompute()
    assert streams.rir_stream_norms(model, [picture(1)], 0, compute).figure.data
    assert streams.rir_stream_maps(model, [picture(1)], 0, 1, compute).figure.data
    assert compute.asked == [tuple(streams.stream_trace_names(model))] * 2
    assert set(compute.asked[0]) == {
        f"blocks.{k}.{s}" for k in range(model.block_count) for s in ("residual", "transient")
    }
    assert "logits" not in compute.asked[0] and "features" not in compute.asked[0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_a_gpu_the_model_stays_there_and_what_is_drawn_comes_back(tmp_path):
    path = tmp_path / "tiny-crmn"
    crmn_viz.save(tiny_model("crmn", num_outputs=10, input_size=32), path, dataset="cifar10")
    model = crmn_viz.load(path)
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    compute, images = DirectCompute(), [picture(2), picture(3)]
    trace = compute.trace(model, images, memory.memory_trace_names(model))
    assert {trace[name].device.type for name in trace} == {"cpu"}
    readout = compute.stepwise(model, images)
    assert readout.step_outputs.device.type == readout.output.device.type == "cpu"
    assert len(compute.classify(model, images, 3)) == 2
    assert isinstance(
        compute.attribution(model, images[0].png, "saliency", ("predicted",), ()).map, np.ndarray
    )
    assert {p.device.type for p in model.parameters()} == {"cuda"}


# --------------------------------------------------------------------------- ZeroGPU


def fake_spaces(monkeypatch) -> types.ModuleType:
    """A stand-in for Hugging Face's ``spaces``: ``GPU`` wraps like the real one and records."""
    module = types.ModuleType("spaces")
    module.wrapped = []  # type: ignore[attr-defined]

    def GPU(function=None, duration=None):  # type: ignore[no-untyped-def]
        if function is None:
            return lambda inner: GPU(inner, duration)

        @functools.wraps(function)
        def on_gpu(*args, **kwargs):  # type: ignore[no-untyped-def]
            return function(*args, **kwargs)

        module.wrapped.append((function.__name__, duration))  # type: ignore[attr-defined]
        return on_gpu

    module.GPU = GPU  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "spaces", module)
    return module


def double(x: int) -> int:
    return 2 * x


def test_on_gpu_wraps_with_spaces_gpu_when_spaces_is_there(monkeypatch):
    spaces = fake_spaces(monkeypatch)
    assert devices.spaces_module() is spaces
    wrapped = devices.on_gpu(double)
    assert wrapped is not double and wrapped.__wrapped__ is double and wrapped(21) == 42
    devices.on_gpu(double, duration=30)
    assert spaces.wrapped == [("double", None), ("double", 30)]


def test_on_gpu_is_the_function_itself_without_spaces(monkeypatch):
    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail, installed or not
    assert devices.spaces_module() is None
    assert devices.on_gpu(double) is double
    assert devices.on_gpu(double, duration=30) is double


def test_the_gpu_gradio_space_installs_cuda_pytorch_and_spaces(tmp_path):
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode:
        pytest.skip("not a git checkout")
    script = REPO / "docs/spaces/make_gradio_space.sh"
    subprocess.run(["bash", str(script), "--gpu", str(tmp_path / "gpu")], check=True, capture_output=True)
    requirements = (tmp_path / "gpu" / "requirements.txt").read_text().splitlines()
    assert {"torch", "spaces", ".[gradio]"} <= set(requirements)
    assert not any("whl/cpu" in line for line in requirements)
    subprocess.run(["bash", str(script), str(tmp_path / "cpu")], check=True, capture_output=True)
    cpu = (tmp_path / "cpu" / "requirements.txt").read_text()
    assert "whl/cpu" in cpu and "spaces" not in cpu.splitlines()
