"""Which views make sense for which model, and which checkpoint to suggest instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crmn_viz.checkpoints import list_checkpoints

__all__ = ["VIEWS", "Applicability", "ViewRequirement", "check_view", "suggest_checkpoints"]


@dataclass(frozen=True)
class ViewRequirement:
    """What a view needs: one of ``archs`` (None: any) and one of ``tasks`` (None: any)."""

    title: str
    archs: tuple[str, ...] | None = None
    tasks: tuple[str, ...] | None = None
    why: str = ""
    train_hint: str = ""


VIEWS: dict[str, ViewRequirement] = {
    "overview": ViewRequirement("Overview"),
    "lstm": ViewRequirement(
        "LSTM memory",
        archs=("crmn",),
        why="it shows the gates of the LSTM that reads the residual blocks, which only a CRMN has",
        train_hint="crmn-viz train configs/crmn-cifar10.toml",
    ),
    "renet": ViewRequirement(
        "ReNet sweeps",
        archs=("renet",),
        why="it shows the four recurrent sweeps over image patches, which only a ReNet makes",
        train_hint="crmn-viz train configs/renet-mnist.toml",
    ),
    "rir": ViewRequirement(
        "RiR streams",
        archs=("rir",),
        why="it shows the residual and transient streams of a ResNet in ResNet",
        train_hint="crmn-viz train configs/rir-cifar10.toml",
    ),
    "attributions": ViewRequirement("Attributions"),
    "faces": ViewRequirement(
        "Face keypoints",
        tasks=("keypoints",),
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


def suggest_checkpoints(
    archs: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    directory: str | Path | None = None,
) -> list[str]:
    """Names of zoo checkpoints with one of ``archs`` and one of ``tasks`` (None: any)."""
    return [
        entry["name"]
        for entry in list_checkpoints(directory)
        if (archs is None or entry["arch"] in archs) and (tasks is None or entry["task"] in tasks)
    ]


def check_view(view: str, card: dict[str, Any], directory: str | Path | None = None) -> Applicability:
    """Does page ``view`` (a key of :data:`VIEWS`) apply to the model described by ``card``?

    Args:
        view: page key.
        card: the model card (``arch`` and ``task`` are read).
        directory: checkpoint folder to search for suggestions (default: the zoo).

    Returns:
        An :class:`Applicability`.
    """
    requirement = VIEWS[view]
    arch, task = card.get("arch"), card.get("task", "classification")
    if (requirement.archs is None or arch in requirement.archs) and (
        requirement.tasks is None or task in requirement.tasks
    ):
        return Applicability(True)
    suggestions = tuple(suggest_checkpoints(requirement.archs, requirement.tasks, directory))
    kind = "keypoint" if task == "keypoints" else "classification"
    message = (
        f"**{requirement.title}** does not apply to this {arch.upper() if arch else ''} {kind} model: "
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
