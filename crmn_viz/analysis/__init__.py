"""Analyses of trained (or untrained) crmn-viz models, shared by the app, the demo and the CLI.

* :func:`classify`: top-k labelled class probabilities.
* :func:`predict_keypoints` / :func:`predict_faces`: detect faces in a photo, crop them as
  the training data was cropped, predict 68 keypoints, map them back to photo pixels.
* :func:`stepwise_readout`: the CRMN's prediction decoded after every residual block.
* :func:`attribute`: saliency, integrated gradients, gradient SHAP, occlusion and Grad-CAM
  for a class, a keypoint coordinate or one CRMN LSTM gate unit.
* :func:`sanity_check`: the model-parameter randomisation test of an attribution map;
  :func:`crmn_viz.faithfulness` (module :mod:`crmn_viz.analysis.faithfulness`): its deletion,
  insertion and ROAD curves; :func:`crmn_viz.trust_table`: both over many images.
* :func:`gate_statistics`: streaming per-step, per-unit mean/std of the CRMN's gates and
  cell state over a data set, overall and per class.
* Populations of units over a data set (import from the modules; ``crmn_viz`` re-exports the
  main functions): :mod:`~crmn_viz.analysis.population` (one streaming, shardable pass that
  records every unit, kept on disk by the weights' digest; exemplars and nearest trajectories),
  :mod:`~crmn_viz.analysis.selectivity` (unit x class selectivity with bootstrap intervals),
  :mod:`~crmn_viz.analysis.probes` (linear probes per block and per memory step),
  :mod:`~crmn_viz.analysis.comparison` (a CRMN beside its own ResNet),
  :mod:`~crmn_viz.analysis.training_logs` and :mod:`~crmn_viz.analysis.block_channels`.

Every function accepts models from :func:`crmn_viz.load` (with a card and ``preprocess``)
and from :func:`crmn_viz.create_model` (see :func:`preprocessor_for`).
"""

from crmn_viz.analysis.attributions import (
    ATTRIBUTION_METHODS,
    AttributionLimits,
    AttributionResult,
    AttributionTarget,
    GateTarget,
    KeypointTarget,
    attribute,
    describe_target,
    gradcam_layer_name,
    occlusion_positions,
    target_function,
)
from crmn_viz.analysis.face_detectors import MTCNNFaceDetector, default_face_detector
from crmn_viz.analysis.inputs import (
    ImageBatch,
    class_names_for,
    evaluation_mode,
    prepare_batch,
    preprocessor_for,
)
from crmn_viz.analysis.keypoints import (
    FACES68_HAAR_CALIBRATION,
    DetectedFace,
    DetectorCalibration,
    FaceKeypoints,
    HaarFaceDetector,
    NoFaceFoundError,
    crop_box_for,
    fit_detector_calibration,
    predict_faces,
    predict_keypoints,
)
from crmn_viz.analysis.predictions import classify
from crmn_viz.analysis.readouts import StepwiseReadout, stepwise_readout
from crmn_viz.analysis.sanity_checks import SANITY_MODES, SanityCheckResult, sanity_check
from crmn_viz.analysis.statistics import (
    GATE_QUANTITIES,
    LSTM_QUANTITIES,
    GateStatistics,
    MomentTable,
    RunningMoments,
    gate_statistics,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "FACES68_HAAR_CALIBRATION",
    "GATE_QUANTITIES",
    "LSTM_QUANTITIES",
    "SANITY_MODES",
    "AttributionLimits",
    "AttributionResult",
    "AttributionTarget",
    "DetectedFace",
    "DetectorCalibration",
    "FaceKeypoints",
    "GateStatistics",
    "GateTarget",
    "HaarFaceDetector",
    "ImageBatch",
    "KeypointTarget",
    "MTCNNFaceDetector",
    "MomentTable",
    "NoFaceFoundError",
    "RunningMoments",
    "SanityCheckResult",
    "StepwiseReadout",
    "attribute",
    "class_names_for",
    "classify",
    "crop_box_for",
    "default_face_detector",
    "describe_target",
    "evaluation_mode",
    "fit_detector_calibration",
    "gate_statistics",
    "gradcam_layer_name",
    "occlusion_positions",
    "predict_faces",
    "predict_keypoints",
    "prepare_batch",
    "preprocessor_for",
    "sanity_check",
    "stepwise_readout",
    "target_function",
]
