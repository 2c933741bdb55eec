"""A readable summary of a model: size, inputs, trace names, and where the CRMN's LSTM taps the ResNet."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from crmn_viz.models.base import TracedModel
from crmn_viz.views.running import trace_shapes

__all__ = ["ArchitectureSummary", "architecture_summary", "card_summary"]


@dataclass
class ArchitectureSummary:
    """What a model is made of.

    Attributes:
        arch: architecture key.
        title: its long name with the paper.
        task: ``"classification"`` or ``"keypoints"``.
        parameters: trainable parameter count.
        input_shape: (channels, height, width).
        outputs: number of classes, or of keypoints for a keypoint model.
        trace_groups: rows ``{"group", "names", "shape"}``: trace names with the same shape
            pattern folded together (``blocks.{0..8}.out``).
        lstm_taps: CRMN only: one row per LSTM step ``{"step", "block", "stage", "block output",
            "pooled", "LSTM input"}`` (eq. 1's block output, mean-pooled and flattened, is the
            step's x_l; shorter inputs are zero-padded to the largest).
        config: the model's configuration options.
    """

    arch: str
    title: str
    task: str
    parameters: int
    input_shape: tuple[int, int, int]
    outputs: int
    trace_groups: list[dict[str, str]] = field(default_factory=list)
    lstm_taps: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def _fold(names_and_shapes: dict[str, tuple[int, ...]]) -> list[dict[str, str]]:
    """Fold ``blocks.0.out``, ``blocks.1.out`` ... into ``blocks.{0..k}.out`` rows."""
    groups: dict[str, list[tuple[int, tuple[int, ...]]]] = {}
    order: list[str] = []
    for name, shape in names_and_shapes.items():
        match = re.fullmatch(r"(\w+)\.(\d+)\.(.+)", name)
        key, index = (
            (f"{match.group(1)}.{{k}}.{match.group(3)}", int(match.group(2))) if match else (name, -1)
        )
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append((index, shape))
    rows = []
    for key in order:
        members = groups[key]
        indices = [index for index, _ in members if index >= 0]
        shapes = list(dict.fromkeys("×".join(map(str, shape)) for _, shape in members))
        shape_text = shapes[0] if len(shapes) == 1 else f"{shapes[0]} … {shapes[-1]}"
        name = key.replace("{k}", f"{{{min(indices)}..{max(indices)}}}") if indices else key
        rows.append({"group": key.split(".")[0], "names": name, "shape": shape_text})
    return rows


def architecture_summary(model: TracedModel) -> ArchitectureSummary:
    """Summarise ``model`` (runs it once on a blank image to learn every trace shape)."""
    shapes = trace_shapes(model)
    outputs = int(model.config.num_outputs)  # type: ignore[attr-defined]
    summary = ArchitectureSummary(
        arch=model.arch,
        title=model.title or model.arch,
        task=model.task,
        parameters=model.num_parameters(),
        input_shape=model.input_shape,
        outputs=outputs // 2 if model.task == "keypoints" else outputs,
        trace_groups=_fold(shapes),
        config=model.config.to_dict(),
    )
    if model.has_memory:
        pool = int(model.config.pool)  # type: ignore[attr-defined]
        width = shapes["lstm.input"][-1]
        stages = getattr(model, "stage_of_block", None)
        for step in range(model.num_steps):  # type: ignore[attr-defined]
            channels, height, width_px = shapes[f"blocks.{step}.out"]
            pooled = (channels, math.floor(height / pool), math.floor(width_px / pool))
            size = pooled[0] * pooled[1] * pooled[2]
            summary.lstm_taps.append(
                {
                    "step": step,
                    "block": f"blocks.{step}.out",
                    "stage": int(stages[step]) if stages is not None else None,
                    "block output": "×".join(map(str, (channels, height, width_px))),
                    "pooled": f"{'×'.join(map(str, pooled))} = {size}",
                    "LSTM input": f"{size} + {width - size} zeros" if width > size else str(size),
                }
            )
    return summary


def card_summary(card: dict[str, Any]) -> dict[str, Any]:
    """The model-card fields worth showing, flattened to short strings and numbers."""
    rows: dict[str, Any] = {
        "architecture": card.get("arch"),
        "task": card.get("task", "classification"),
        "dataset": card.get("dataset") or "unknown",
        "input": f"{card.get('in_channels', '?')} × {'×'.join(map(str, card.get('input_size', [])))}",
        "parameters": f"{card['num_parameters']:,}" if isinstance(card.get("num_parameters"), int) else None,
        "classes": len(card["class_names"]) if isinstance(card.get("class_names"), list) else None,
    }
    for key, value in (card.get("metrics") or {}).items():
        rows[key.replace("_", " ")] = round(value, 4) if isinstance(value, float) else value
    training = card.get("training") or {}
    for key in ("command", "epochs", "wall_time_s", "hardware", "threads_per_process", "torch"):
        if key in training:
            rows[f"training {key.replace('_', ' ')}"] = training[key]
    parent = training.get("initialised_from")
    if isinstance(parent, dict) and parent.get("checkpoint"):
        parent_metrics = ", ".join(
            f"{key.removeprefix('test_').replace('_', ' ')} {value:.4f}"
            for key, value in (parent.get("metrics") or {}).items()
            if isinstance(value, float)
        )
        details = "; ".join(
            part
            for part in (f"{parent['epochs']} epochs" if parent.get("epochs") else "", parent_metrics)
            if part
        )
        rows["training started from"] = parent["checkpoint"] + (f" ({details})" if details else "")
    recipe = training.get("recipe") or {}
    swa_from = recipe.get("swa_from_epoch") if isinstance(recipe, dict) else None
    if isinstance(swa_from, int) and swa_from > 0:
        rows["training weight averaging"] = (
            f"SWA: the shipped weights average epochs {swa_from}-{training.get('epochs', '?')}"
        )
    for key in ("created", "package_version", "storage_dtype", "license_note", "notes"):
        if card.get(key):
            rows[key.replace("_", " ")] = card[key]
    return {key: str(value) for key, value in rows.items() if value is not None}
