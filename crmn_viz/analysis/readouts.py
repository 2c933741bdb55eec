"""Iterative inference: decode the CRMN's prediction after every residual block.

The CRMN's LSTM reads one block output per step (Moniz & Pal 2016, eqs. 2-7) and its final
hidden state ``h_T`` feeds the output layer together with the ResNet's pooled features.
Applying the same output layer to every intermediate ``h_l`` (``CRMN.head(h_l, pooled)``)
shows how the prediction forms as the memory reads deeper blocks; the last step is the
model's actual output.
"""

from __future__ import annotations

import dataclasses

import torch

from crmn_viz.analysis.inputs import ImageBatch, class_names_for, evaluation_mode, prepare_batch
from crmn_viz.models.base import TracedModel

__all__ = ["StepwiseReadout", "stepwise_readout"]


@dataclasses.dataclass
class StepwiseReadout:
    """The CRMN's decoded prediction after each LSTM step (one step per residual block).

    Attributes:
        task: ``"classification"`` or ``"keypoints"``.
        step_outputs: raw head output per step: logits [B, T, classes] or keypoints
            [B, T, K, 2] in [0, 1] crop coordinates.
        probabilities: softmax of the logits per step [B, T, classes] (classification) or None.
        keypoints: [B, T, K, 2] (keypoint task) or None.
        output: the model's own output (``model(x)``): logits [B, classes] or keypoints [B, K, 2].
        class_names: labels of the classes (empty for keypoints).
    """

    task: str
    step_outputs: torch.Tensor
    probabilities: torch.Tensor | None
    keypoints: torch.Tensor | None
    output: torch.Tensor
    class_names: list[str]

    @property
    def num_steps(self) -> int:
        """T, the number of LSTM steps (= residual blocks)."""
        return int(self.step_outputs.shape[1])

    def predicted_classes(self) -> torch.Tensor:
        """Arg-max class after every step, [B, T] (classification only)."""
        if self.probabilities is None:
            raise ValueError("predicted_classes is defined for classifiers only")
        return self.probabilities.argmax(dim=-1)


def stepwise_readout(model: TracedModel, images: ImageBatch) -> StepwiseReadout:
    """Decode the CRMN output layer from every LSTM step ("iterative inference").

    Runs once in eval mode under ``torch.no_grad()``, recording only ``lstm.hidden`` and
    ``pooled``, then applies ``model.head(hidden [B, T, H], pooled [B, C])``.

    Args:
        model: a CRMN (classifier or keypoint regressor).
        images: PIL image(s) or a normalised tensor [B, C, H, W].

    Returns:
        A :class:`StepwiseReadout` of CPU tensors (on a GPU the network runs there and only these
        outputs are copied back); ``step_outputs[:, -1]`` equals the model output.

    Raises:
        TypeError: the model is not a CRMN (only the CRMN has an LSTM read-out over blocks).
    """
    if not model.has_stepwise_readout:
        raise TypeError(
            f"stepwise_readout needs a CRMN: only the CRMN has an LSTM whose every step can be decoded by "
            f"its output layer; got a {model.arch!r} model"
        )
    batch = prepare_batch(model, images)
    with evaluation_mode(model), torch.no_grad():
        output, trace = model.run_with_trace(batch, names=["lstm.hidden", "pooled"])
        step_outputs = model.head(trace["lstm.hidden"], trace["pooled"])  # type: ignore[operator]
    # Only the decoded outputs are drawn: they come back to the CPU (a no-op there), the trace stays.
    step_outputs, output = step_outputs.cpu(), output.cpu()
    if model.task == "keypoints":
        return StepwiseReadout("keypoints", step_outputs, None, step_outputs, output, [])
    probabilities = torch.softmax(step_outputs, dim=-1)
    return StepwiseReadout(
        "classification", step_outputs, probabilities, None, output, class_names_for(model)
    )
