"""Which views make sense for which model, and which checkpoint to suggest instead.

Every page states what it needs as a predicate on a model's capabilities (``has_memory``,
``sweep_names``, ``stream_names``, ``task``: see :class:`~crmn_viz.models.base.TracedModel`),
never as a list of architecture names, so a new architecture shows on every page its
capabilities allow. Suggestions come from the same predicates, asked of every zoo checkpoint's
model built on the ``meta`` device from its card (no weights are read).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmn_viz.checkpoints import CheckpointError, build_skeleton, list_checkpoints
from crmn_viz.models.base import TracedModel

__all__ = [
    "VIEWS",
    "Applicability",
    "ModelNeed",
    "ViewRequirement",
    "check_view",
    "suggest_checkpoints",
]

ModelNeed = Callable[[TracedModel], bool]
"""A predicate on a model, e.g. ``lambda model: model.has_memory``."""


def _any_model(model: TracedModel) -> bool:
    return True


@dataclass(frozen=True)
class ViewRequirement:
    """What a view needs of a model.

    Attributes:
        title: the page title.
        needs: predicate on the model's capabilities (default: any model).
        why: completes "does not apply to this model: ..." when ``needs`` fails.
        train_hint: a command that trains a model the view applies to.
    """

    title: str
    needs: ModelNeed = _any_model
    why: str = ""
    train_hint: str = ""

    def applies_to(self, model: TracedModel) -> bool:
        """Whether the view can show ``model``."""
        return bool(self.needs(model))


VIEWS: dict[str, ViewRequirement] = {
    "overview": ViewRequirement("Overview"),
    "lstm": ViewRequirement(
        "LSTM memory",
        needs=lambda model: model.has_memory,
        why="it shows the gates of the LSTM that reads the residual blocks, which only a CRMN has",
        train_hint="crmn-viz train configs/crmn-cifar10.toml",
    ),
    "renet": ViewRequirement(
        "ReNet sweeps",
        needs=lambda model: bool(model.sweep_names),
        why="it shows the four recurrent sweeps over image patches, which only a ReNet makes",
        train_hint="crmn-viz train configs/renet-mnist.toml",
    ),
    "rir": ViewRequirement(
        "RiR streams",
        needs=lambda model: bool(model.stream_names),
        why="it shows the residual and transient streams of a ResNet in ResNet",
        train_hint="crmn-viz train configs/rir-cifar10.toml",
    ),
    "experiments": ViewRequirement(
        "Experiments",
        needs=lambda model: model.has_memory or bool(model.sweep_names) or bool(model.removable_streams),
        why=(
            "it edits a memory, a sweep or a removable stream inside the forward pass, and this model "
            "has none of them"
        ),
        train_hint="crmn-viz train configs/crmn-cifar10.toml",
    ),
    "blocks": ViewRequirement(
        "Blocks",
        needs=lambda model: bool(model.gradcam_layers),
        why="it shows the output of every residual block or layer, and this model records none",
        train_hint="crmn-viz train configs/resnet-cifar10.toml",
    ),
    "population": ViewRequirement(
        "Population",
        needs=lambda model: bool(model.gradcam_layers) or model.has_memory,
        why="it studies the units of the blocks or the memory over a data set, and this model records none",
        train_hint="crmn-viz train configs/crmn-cifar10.toml",
    ),
    "compare": ViewRequirement("CRMN vs ResNet"),  # compares zoo pairs, whatever the sidebar holds
    "attributions": ViewRequirement("Attributions"),
    "faces": ViewRequirement(
        "Face keypoints",
        needs=lambda model: model.task == "keypoints",
        why="it needs a network that predicts 68 facial keypoints",
        train_hint="crmn-viz train configs/crmn-faces68.toml",
    ),
    "export": ViewRequirement("Export"),
}
"""Requirements of every page of the app, by page key."""


@dataclass(frozen=True)
class Applicability:
    """Whether a view applies, and if not a kind explanation with suggestions.

    Attributes:
        applies: True when the view can show the model.
        message: Markdown for people when it does not apply ("" otherwise).
        suggestions: zoo checkpoint names that would work.
    """

    applies: bool
    message: str = ""
    suggestions: tuple[str, ...] = ()


def _need(needs: str | ViewRequirement | ModelNeed | None) -> ModelNeed:
    if needs is None:
        return _any_model
    if isinstance(needs, str):
        return VIEWS[needs].needs
    if isinstance(needs, ViewRequirement):
        return needs.needs
    return needs


@functools.lru_cache(maxsize=128)
def _skeleton(arch: str, config_json: str) -> TracedModel | None:
    """The model of a card on the ``meta`` device, built once per (architecture, config)."""
    try:
        return build_skeleton({"arch": arch, "config": json.loads(config_json)})
    except CheckpointError:
        return None


def _model_of(entry: Mapping[str, Any]) -> TracedModel | None:
    """The skeleton of a card or :func:`~crmn_viz.checkpoints.list_checkpoints` entry (None if invalid)."""
    config = entry.get("config")
    if not isinstance(config, Mapping):
        return None
    return _skeleton(str(entry.get("arch")), json.dumps(dict(config), sort_keys=True, default=str))


def suggest_checkpoints(
    needs: str | ViewRequirement | ModelNeed | None = None,
    directory: str | Path | None = None,
) -> list[str]:
    """Names of the zoo checkpoints whose model satisfies ``needs``, in the zoo's order.

    Args:
        needs: a page key of :data:`VIEWS`, a :class:`ViewRequirement`, a predicate on a model
            (``lambda model: model.task == "classification"``), or None for every checkpoint.
        directory: checkpoint folder (default: the zoo, :func:`crmn_viz.checkpoints.checkpoint_dir`).

    Each checkpoint's model is built from its card on the ``meta`` device (no weights are read)
    and asked; a card whose model cannot be built is left out.
    """
    entries = list_checkpoints(directory)
    if needs is None:
        return [entry["name"] for entry in entries]
    predicate = _need(needs)
    names = []
    for entry in entries:
        model = _model_of(entry)
        if model is not None and predicate(model):
            names.append(entry["name"])
    return names


def check_view(
    view: str, model: TracedModel | Mapping[str, Any], directory: str | Path | None = None
) -> Applicability:
    """Does page ``view`` (a key of :data:`VIEWS`) apply to ``model``?

    Args:
        view: page key.
        model: the model (its capabilities are read); a model card (a mapping with ``arch``
            and ``config``) is accepted too, and its model built on the ``meta`` device.
        directory: checkpoint folder to search for suggestions (default: the zoo).

    Returns:
        An :class:`Applicability`.

    Raises:
        KeyError: unknown page key.
        ValueError: a card whose model cannot be built.
    """
    requirement = VIEWS[view]
    if not isinstance(model, TracedModel):
        built = _model_of(model)
        if built is None:
            raise ValueError(f"cannot tell which views suit the card of a {model.get('arch')!r} model")
        model = built
    if requirement.applies_to(model):
        return Applicability(True)
    suggestions = tuple(suggest_checkpoints(requirement, directory))
    kind = "keypoint" if model.task == "keypoints" else "classification"
    message = (
        f"**{requirement.title}** does not apply to this {model.arch.upper()} {kind} model: "
        f"{requirement.why}."
    )
    if suggestions:
        names = ", ".join(f"`{name}`" for name in suggestions)
        message += f"\n\nPick {names} in the sidebar's checkpoint list to see it."
    else:
        message += (
            f"\n\nNo such checkpoint is in the zoo yet: upload one in the sidebar, or train one with "
            f"`{requirement.train_hint}`."
        )
    return Applicability(False, message, suggestions)
