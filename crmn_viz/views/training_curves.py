"""Views of the shipped training logs: Figure 3 of Moniz & Pal (2016) for any checkpoints, and a
table of how each run ended.

The logs are found with :func:`crmn_viz.analysis.training_logs.find_training_log`
(``$CRMN_VIZ_TRAINING_LOGS``, then ``docs/training-logs`` beside the checkpoint folder). Styles
come from the model cards: checkpoints trained with the same recipe on the same backbone (a
CRMN and its ResNet) share a colour, and a model with memory is drawn solid, one without dashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crmn_viz.analysis.training_logs import (
    TrainingLog,
    find_training_log,
    read_training_log,
    training_log_folders,
)
from crmn_viz.checkpoints import CheckpointError, load_card, resolve_checkpoint
from crmn_viz.figures.layout import line_style
from crmn_viz.figures.training_curves import CurveStyle, plot_training_curves
from crmn_viz.models import model_class
from crmn_viz.views.shown import Shown, shown

__all__ = ["pair_styles", "read_logs", "training_curves_view", "training_summary_rows"]

_RECIPE_OWN_FIELDS = ("name", "arch", "model", "init_from")
"""Recipe fields that differ between a CRMN and its ResNet trained the same way."""
_DASHES_WITH_MEMORY = ("solid", "longdash")
_DASHES_WITHOUT_MEMORY = ("dash", "dot", "dashdot")
_MAX_NAME_LENGTH = 80


def read_logs(names: Sequence[str]) -> tuple[dict[str, TrainingLog], list[str]]:
    """The training log of every checkpoint that has one, and the names that have none.

    Raises:
        crmn_viz.analysis.training_logs.TrainingLogError: a log that exists is malformed.
    """
    logs: dict[str, TrainingLog] = {}
    missing: list[str] = []
    for name in dict.fromkeys(names):
        path = find_training_log(name)
        if path is None:
            missing.append(name)
        else:
            logs[name] = read_training_log(path)
    return logs, missing


def _card(name: str) -> dict[str, Any] | None:
    """The validated model card of a checkpoint name, or None when there is none."""
    try:
        return load_card(resolve_checkpoint(name)[1])
    except CheckpointError:
        return None


def _has_memory(card: Mapping[str, Any] | None) -> bool:
    """The card's architecture's :attr:`~crmn_viz.models.base.TracedModel.has_memory` (a class
    attribute: no model is built)."""
    try:
        return card is not None and bool(model_class(str(card.get("arch"))).has_memory)
    except ValueError:  # an unknown architecture
        return False


def _recipe_key(card: Mapping[str, Any] | None) -> str | None:
    """What a pair shares: the data set and the training recipe without the model's own fields."""
    if card is None:
        return None
    recipe = dict((card.get("training") or {}).get("recipe") or {})
    for own in _RECIPE_OWN_FIELDS:
        recipe.pop(own, None)
    return json.dumps({"dataset": card.get("dataset"), "recipe": recipe}, sort_keys=True, default=str)


def _configs_agree(first: Mapping[str, Any], second: Mapping[str, Any]) -> bool:
    """Whether two configs agree on every option they both have (the backbone: depth, width...)."""
    return all(first[key] == second[key] for key in set(first) & set(second))


@dataclass
class _Group:
    """Checkpoints drawn in one colour: their recipe key, configs, and dashes handed out."""

    key: str | None
    colour: str
    configs: list[Mapping[str, Any]] = field(default_factory=list)
    with_memory: int = 0
    without_memory: int = 0

    def admits(self, key: str, config: Mapping[str, Any]) -> bool:
        return key == self.key and all(_configs_agree(config, other) for other in self.configs)

    def add(self, config: Mapping[str, Any], memory: bool) -> str:
        """Take a member in; its dash: solid (then long dashes) with memory, dashed (then dotted,
        dash-dotted) without."""
        self.configs.append(config)
        if memory:
            self.with_memory += 1
            return _DASHES_WITH_MEMORY[min(self.with_memory, len(_DASHES_WITH_MEMORY)) - 1]
        self.without_memory += 1
        return _DASHES_WITHOUT_MEMORY[min(self.without_memory, len(_DASHES_WITHOUT_MEMORY)) - 1]


def pair_styles(names: Sequence[str]) -> dict[str, CurveStyle]:
    """One colour per group of checkpoints trained alike, solid with memory and dashed without.

    Two checkpoints are drawn in one colour when their cards name the same data set and the same
    training recipe (all of ``training.recipe`` but the model's own ``name``, ``arch``, ``model``
    and ``init_from``) and their configs agree on every option both have: the zoo's
    CRMN/ResNet pairs (depth 20, depth 32, SWA). Whether a model has memory is its capability
    (:attr:`~crmn_viz.models.base.TracedModel.has_memory` of the card's architecture). A name
    without a card gets a colour of its own.

    Returns:
        name -> :class:`~crmn_viz.figures.training_curves.CurveStyle`, for every name.
    """
    groups: list[_Group] = []
    styles: dict[str, CurveStyle] = {}
    for name in dict.fromkeys(names):
        card = _card(name)
        key = _recipe_key(card)
        config = dict((card or {}).get("config") or {})
        group = next((group for group in groups if key is not None and group.admits(key, config)), None)
        if group is None:
            group = _Group(key, line_style(len(groups))[0])
            groups.append(group)
        styles[name] = CurveStyle(group.colour, group.add(config, _has_memory(card)))
    return styles


def _figure_name(names: Sequence[str]) -> str:
    joined = "training_curves_" + "_".join(names)
    if len(joined) <= _MAX_NAME_LENGTH:
        return joined
    digest = hashlib.sha256("\0".join(names).encode()).hexdigest()[:8]
    return f"training_curves_{len(names)}_checkpoints_{digest}"


def training_curves_view(names: Sequence[str]) -> Shown:
    """Training loss, training accuracy, test accuracy and learning rate of the checkpoints' runs.

    Checkpoints without a log are left out (the caption names them).

    Args:
        names: checkpoint names, e.g. ``["crmn-cifar10", "resnet-cifar10"]``.

    Returns:
        The :class:`Shown` figure; its settings hold the checkpoints drawn, each log's file name
        and SHA-256, the test metric and the names without a log.

    Raises:
        FileNotFoundError: none of the checkpoints has a log (the message lists the folders
            searched).
        crmn_viz.analysis.training_logs.TrainingLogError: a log is malformed.
    """
    logs, missing = read_logs(names)
    if not logs:
        folders = ", ".join(str(folder) for folder in training_log_folders())
        raise FileNotFoundError(f"no training log for {list(names)} (looked in {folders})")
    styles = pair_styles(list(logs))
    figure = plot_training_curves(logs, styles)
    metric = figure.layout.meta["test_metric"]
    kinds = {style.dash == "solid" for style in styles.values()}
    caption = (
        "Per epoch: training loss and accuracy (under augmentation), the test metric where it was "
        "measured, and the learning rate. Dotted lines: warm restarts."
    )
    if len(logs) > 1:
        caption += " One colour per recipe" + (
            "; solid with memory (CRMN), dashed without." if len(kinds) > 1 else "."
        )
    if missing:
        caption += f" No training log for {', '.join(missing)}."
    return shown(
        _figure_name(list(logs)),
        figure,
        [],
        caption,
        checkpoints=list(logs),
        logs={name: {"file": log.file_name, "sha256": log.sha256} for name, log in logs.items()},
        test_metric=metric,
        without_log=missing,
    )


def training_summary_rows(names: Sequence[str]) -> list[dict[str, Any]]:
    """How each checkpoint's run ended, one row per checkpoint with a log (in ``names`` order).

    Returns:
        Rows ``{"checkpoint", "epochs", "final_train_loss", "final_train_accuracy",
        "final_test_accuracy", "final_test_nme_crop", "test_epoch", "hours", "log",
        "log_sha256"}``: the last logged value of each field (None when the log has none;
        ``test_epoch`` is the epoch of the last test measurement), and ``hours`` the training
        time, the sum of ``epoch_time_s`` over the epochs / 3600 (evaluation passes excluded).

    Raises:
        crmn_viz.analysis.training_logs.TrainingLogError: a log is malformed.
    """
    logs, _ = read_logs(names)
    rows = []
    for name, log in logs.items():
        test_epochs, _ = log.measured(
            "test_accuracy" if log.last("test_accuracy") is not None else "test_nme_crop"
        )
        _, times = log.measured("epoch_time_s")
        rows.append(
            {
                "checkpoint": name,
                "epochs": int(log.epoch[-1]),
                "final_train_loss": log.last("train_loss"),
                "final_train_accuracy": log.last("train_accuracy"),
                "final_test_accuracy": log.last("test_accuracy"),
                "final_test_nme_crop": log.last("test_nme_crop"),
                "test_epoch": int(test_epochs[-1]) if test_epochs.size else None,
                "hours": round(float(times.sum()) / 3600.0, 3),
                "log": log.file_name,
                "log_sha256": log.sha256,
            }
        )
    return rows
