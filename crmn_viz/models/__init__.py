"""Model registry: ``create_model(arch, **config)`` and ``list_architectures()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crmn_viz.models.base import ModelConfig, TracedModel
from crmn_viz.models.crmn import CRMN, CRMNConfig
from crmn_viz.models.renet import ReNet, ReNetConfig
from crmn_viz.models.resnet import ResNet, ResNetConfig
from crmn_viz.models.rir import RiR, RiRConfig

__all__ = [
    "ARCHITECTURES",
    "CRMN",
    "ModelConfig",
    "ReNet",
    "ResNet",
    "RiR",
    "TracedModel",
    "config_class",
    "create_model",
    "list_architectures",
    "model_class",
]

ARCHITECTURES: dict[str, tuple[type[ModelConfig], Callable[[Any], TracedModel]]] = {
    "resnet": (ResNetConfig, ResNet),
    "crmn": (CRMNConfig, CRMN),
    "renet": (ReNetConfig, ReNet),
    "rir": (RiRConfig, RiR),
}


def list_architectures() -> list[str]:
    """Names accepted by :func:`create_model`."""
    return list(ARCHITECTURES)


def config_class(arch: str) -> type[ModelConfig]:
    """The config dataclass of an architecture (its fields are the accepted options)."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {list_architectures()}")
    return ARCHITECTURES[arch][0]


def model_class(arch: str) -> type[TracedModel]:
    """The model class of an architecture: its capabilities can be read without building one.

    ``model_class("crmn").has_memory`` is True; see the capability attributes of
    :class:`~crmn_viz.models.base.TracedModel`.

    Raises:
        ValueError: unknown architecture.
    """
    config_class(arch)  # validates the name
    return ARCHITECTURES[arch][1]  # type: ignore[return-value]


def create_model(arch: str, **config: Any) -> TracedModel:
    """Build an architecture with its config options, e.g. ``create_model("crmn", depth=32)``.

    Raises:
        ValueError: unknown architecture, unknown option, or an invalid value.
    """
    config_type = config_class(arch)
    return ARCHITECTURES[arch][1](config_type.from_dict(config))
