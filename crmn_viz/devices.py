"""Where the networks run: CUDA when it is there, else the CPU; ``CRMN_VIZ_DEVICE`` decides otherwise.

Every front end loads its checkpoints through :func:`crmn_viz.load` with ``device="auto"``, which
asks :func:`select_device` once per checkpoint and process (the Streamlit app and the Gradio demo
cache the loaded model). The model then lives on that device; each request moves its images there
once (:func:`crmn_viz.analysis.prepare_batch`) and only what a figure draws comes back to the CPU.

The one CUDA query is :func:`cuda_available`, so tests can fake a GPU (or its absence) with
``monkeypatch.setattr(crmn_viz.devices, "cuda_available", lambda: True)`` on any machine.

On Hugging Face ZeroGPU the GPU work of the Gradio demo runs inside functions wrapped by the
``spaces`` package's ``spaces.GPU`` (:func:`on_gpu`); where that package is not installed the
wrapper is the function itself.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import torch

__all__ = [
    "DEVICE_VARIABLE",
    "DeviceError",
    "cuda_available",
    "describe_device",
    "device_override",
    "on_gpu",
    "select_device",
    "spaces_module",
]

DEVICE_VARIABLE = "CRMN_VIZ_DEVICE"
"""Environment variable that overrides the automatic choice: ``auto`` (default), ``cpu``, ``cuda``
or ``cuda:N``."""

KNOWN_TYPES = ("cpu", "cuda")
"""Device types the library runs on (the ``meta`` device is for shape checks, not for running)."""

F = TypeVar("F", bound=Callable[..., Any])


class DeviceError(ValueError):
    """A device was asked for that this machine cannot give (the message says what to set)."""


def cuda_available() -> bool:
    """Whether PyTorch sees a CUDA GPU (the only place the library asks; tests replace it)."""
    return torch.cuda.is_available()


def device_override() -> str | None:
    """The value of :data:`DEVICE_VARIABLE`, stripped (None when unset, empty or ``auto``)."""
    value = os.environ.get(DEVICE_VARIABLE, "").strip()
    return None if value.lower() in ("", "auto") else value


def select_device(requested: str | torch.device | None = "auto") -> torch.device:
    """The device to load a model onto.

    Args:
        requested: ``"auto"`` or None (the variable :data:`CRMN_VIZ_DEVICE <DEVICE_VARIABLE>` when
            set, else CUDA when :func:`cuda_available`, else the CPU), or an explicit device
            (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a :class:`torch.device`), which wins over the
            variable.

    Raises:
        DeviceError: an unknown device, or CUDA asked for where there is none; the message names
            the variable when the variable asked.
    """
    source = "device"
    if requested is None or (isinstance(requested, str) and requested.strip().lower() == "auto"):
        override = device_override()
        if override is None:
            return torch.device("cuda" if cuda_available() else "cpu")
        requested, source = override, DEVICE_VARIABLE
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(
            f"{source}={str(requested)[:40]!r} is not a device: use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type not in KNOWN_TYPES:
        raise DeviceError(f"{source}={str(requested)[:40]!r}: crmn-viz runs on auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not cuda_available():
        hint = f" (unset {DEVICE_VARIABLE} or set it to cpu)" if source == DEVICE_VARIABLE else ""
        raise DeviceError(f"{source}={str(requested)!r} asks for CUDA, but PyTorch sees no CUDA GPU{hint}")
    return device


def describe_device(device: torch.device | str) -> str:
    """The device for people: ``"CUDA (NVIDIA H100 80GB HBM3)"`` or ``"CPU"``."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return f"CUDA ({torch.cuda.get_device_name(device)})"
        except (AssertionError, RuntimeError):  # no CUDA build or driver: say what was asked
            return "CUDA"
    return device.type.upper()


def spaces_module() -> ModuleType | None:
    """Hugging Face's ``spaces`` package when it can be imported (on a Gradio Space), else None.

    On ZeroGPU, importing it patches PyTorch so that models can be moved to ``cuda`` at start-up
    and the GPU is attached inside ``spaces.GPU`` functions; it must therefore be imported before
    the first model is placed (the Gradio demo calls this first thing in ``build_demo``).
    """
    try:
        return importlib.import_module("spaces")
    except ImportError:
        return None


def on_gpu(function: F, *, duration: int | None = None) -> F:
    """``spaces.GPU(function)`` (ZeroGPU attaches a GPU for each call) where the ``spaces``
    package is importable; ``function`` itself elsewhere.

    Args:
        function: the work that needs the GPU. Its arguments and result cross a process boundary
            on ZeroGPU, so they should be small, picklable values (uploads, names, figures), never
            a model.
        duration: seconds of GPU asked for each call (ZeroGPU's default when None).
    """
    spaces = spaces_module()
    gpu = getattr(spaces, "GPU", None)
    if not callable(gpu):
        return function
    return gpu(function) if duration is None else gpu(duration=duration)(function)
