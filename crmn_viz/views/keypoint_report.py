"""Markdown tables of the face-keypoint evaluations (``crmn-viz faces``, ``crmn-viz face-detectors``).

The per-landmark-group table follows the 2017 CRMN paper's Table 1 (mean NME normalised by the
inter-ocular distance), one row per model and protocol, with the iBUG groups as columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from crmn_viz.analysis.face_detectors import DetectorComparison
from crmn_viz.analysis.keypoint_evaluation import LANDMARK_GROUPS, paired_nme_difference

__all__ = ["detector_comparison_markdown", "keypoint_evaluation_markdown", "keypoint_zoo_rows"]


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def keypoint_evaluation_markdown(results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """NME per model and protocol, overall and per landmark group, then the refinement rounds.

    Args:
        results: model name -> ``{"box given": evaluation, "detector": evaluation}``, each the
            dict :func:`~crmn_viz.analysis.keypoint_evaluation.evaluate_keypoints_on_photos`
            returns.
    """
    groups = list(LANDMARK_GROUPS)
    lines = [
        "| model | protocol | photos scored | no face found | NME | " + " | ".join(groups) + " |",
        "|---|---|---|---|---|" + "---|" * len(groups),
    ]
    for name, protocols in results.items():
        for protocol, result in protocols.items():
            missed = result["no_face_found"] if protocol != "box given" else "-"
            if protocol != "box given" and result.get("whole_photo"):
                missed = f"{missed} ({result['whole_photo']} scored on the whole photo)"
            refined = bool(result.get("nme_by_round"))
            cells = [
                name,
                protocol
                if protocol == "box given"
                else result["detector"] + (" + re-crop" if refined else ""),
                f"{result['num_scored']}/{result['num_photos']}",
                str(missed),
                _percent(result["nme"]),
                *(_percent(result["nme_by_group"][g]) for g in groups),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| model | " + " | ".join(f"after round {k}" for k in range(4)) + " | re-crops made (faces) |",
    ]
    lines.append("|---|" + "---|" * 5)
    for name, protocols in results.items():
        found = protocols.get("detector")
        if not found or not found.get("nme_by_round"):
            continue
        rounds = [_percent(v) for v in found["nme_by_round"]] + ["-"] * (4 - len(found["nme_by_round"]))
        used = ", ".join(f"{k}: {v}" for k, v in found["rounds_used"].items())
        lines.append(f"| {name} | " + " | ".join(rounds[:4]) + f" | {used} |")
    names = list(results)
    if len(names) > 1:
        lines += [
            "",
            "| difference in NME (paired bootstrap 95% CI over the photos both scored) | protocol |",
        ]
        lines.append("|---|---|")
        for other in names[1:]:
            for protocol in ("box given", "detector"):
                a, b = results[names[0]].get(protocol), results[other].get(protocol)
                if not a or not b or "per_photo_nme" not in a or "per_photo_nme" not in b:
                    continue
                d = paired_nme_difference(a["per_photo_nme"], b["per_photo_nme"])
                lines.append(
                    f"| {names[0]} − {other}: {100 * d['difference']:+.2f} points "
                    f"({100 * d['low']:+.2f} to {100 * d['high']:+.2f}; {d['photos']} photos) | {protocol} |"
                )
    return "\n".join(lines)


def detector_comparison_markdown(rows: Sequence[DetectorComparison]) -> str:
    """One row per detector: misses, agreement of its calibrated box with the keypoints' box, speed."""
    lines = [
        "| detector | photos | no face found | most confident is the annotated face | "
        "IoU median | IoU 10th percentile | IoU < 0.5 | ms per photo | calibration (dx, dy, extent) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c = row.calibration
        lines.append(
            f"| {row.detector} | {row.photos} | {row.missed} ({100 * row.miss_rate:.1f}%) | "
            f"{row.first_is_nearest} | {row.iou_median:.3f} | {row.iou_p10:.3f} | {row.iou_below_half} | "
            f"{1000 * row.seconds_per_photo:.0f} | ({c.center_shift_x:.3f}, {c.center_shift_y:.3f}, "
            f"{c.keypoint_extent:.3f}) |"
        )
    return "\n".join(lines)


def keypoint_zoo_rows(directory: str | Path | None = None) -> list[dict[str, Any]]:
    """The keypoint models of a checkpoint folder on their test photos, from their cards, as rows.

    One row per model and protocol ("face box given", "face found": the card's detector with
    its re-crops), with the photos where no face was found and the NME overall and per landmark
    group in percent, as the 2017 paper's Table 1 (``crmn-viz eval NAME --write-card`` measures
    them; ``crmn-viz faces`` re-measures them with paired intervals). Models whose card lacks
    the per-group numbers are left out.

    Args:
        directory: the checkpoint folder (default: the shipped zoo).
    """
    from crmn_viz.checkpoints import list_checkpoints

    rows = []
    for entry in list_checkpoints(directory):
        metrics = entry.get("metrics") or {}
        if entry.get("task") != "keypoints":
            continue
        for protocol, key in (("face box given", "test_nme_box_given"), ("face found", "test_nme_detector")):
            groups = [metrics.get(f"{key}_{group}") for group in LANDMARK_GROUPS]
            if not isinstance(metrics.get(key), float) or not all(isinstance(v, float) for v in groups):
                continue
            found = protocol == "face found"
            rows.append(
                {
                    "model": entry["name"],
                    "parameters (M)": round(entry["num_parameters"] / 1e6, 2),
                    "face box": f"{metrics.get('test_detector', 'detector')} + re-crop" if found else "given",
                    "no face found": metrics.get("test_detector_no_face_found") if found else None,
                    "photos": metrics.get("test_num_photos"),
                    "NME (%)": round(100 * metrics[key], 2),
                    **{group: round(100 * value, 2) for group, value in zip(LANDMARK_GROUPS, groups)},
                }
            )
    return rows
