"""Per-step read-out of the CRMN ("iterative inference")."""

from __future__ import annotations

import pytest
import torch

from crmn_viz.analysis import stepwise_readout
from tests.analysis.conftest import tiny_analysis_model, tiny_keypoint_crmn
from tests.conftest import random_input


def test_classifier_readout_last_step_is_the_model_output() -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 3)
    readout = stepwise_readout(model, x)
    steps = model.num_steps
    assert readout.task == "classification" and readout.num_steps == steps == 6
    assert readout.probabilities is not None and readout.probabilities.shape == (3, steps, 5)
    assert readout.keypoints is None
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(readout.output, logits)
    torch.testing.assert_close(readout.step_outputs[:, -1], logits, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(readout.probabilities[:, -1], torch.softmax(logits, -1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(readout.probabilities.sum(-1), torch.ones(3, steps))
    assert readout.predicted_classes().shape == (3, steps)
    assert readout.class_names == [f"class {k}" for k in range(5)]


def test_every_step_decodes_its_own_hidden_state_with_the_output_layer() -> None:
    model = tiny_analysis_model("crmn")
    x = random_input(model, 2)
    readout = stepwise_readout(model, x)
    with torch.no_grad():
        _, trace = model.run_with_trace(x)
        for step in range(model.num_steps):
            features = torch.cat([trace["lstm.hidden"][:, step], trace["pooled"]], dim=1)
            torch.testing.assert_close(readout.step_outputs[:, step], model.fc(features))


def test_keypoint_readout_gives_keypoints_per_step() -> None:
    model = tiny_keypoint_crmn()
    x = torch.randn(2, 3, 32, 32)
    readout = stepwise_readout(model, x)
    assert readout.task == "keypoints" and readout.probabilities is None
    assert readout.keypoints is not None and readout.keypoints.shape == (2, model.num_steps, 68, 2)
    assert float(readout.keypoints.min()) >= 0 and float(readout.keypoints.max()) <= 1
    torch.testing.assert_close(readout.keypoints[:, -1], readout.output, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="classifiers"):
        readout.predicted_classes()


def test_readout_restores_training_mode() -> None:
    model = tiny_analysis_model("crmn").train()
    x = random_input(model, 2)
    readout = stepwise_readout(model, x)
    assert model.training  # restored afterwards ...
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(readout.output, model(x))  # ... but read out in eval mode


@pytest.mark.parametrize("arch", ["resnet", "rir", "renet"])
def test_non_crmn_models_are_refused_with_a_clear_message(arch: str) -> None:
    model = tiny_analysis_model(arch)
    with pytest.raises(TypeError, match="only the CRMN has an LSTM"):
        stepwise_readout(model, random_input(model, 1))
