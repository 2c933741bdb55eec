"""The shape of the code: what a model can show is asked of its capabilities, not of its name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from crmn_viz.models import create_model, list_architectures, model_class
from crmn_viz.models.base import TracedModel
from crmn_viz.views.applicability import VIEWS
from tests.conftest import TINY_CONFIGS

REPO = Path(__file__).resolve().parents[1]
ALLOWED = (
    "crmn_viz/models/",  # an architecture states its own name and capabilities
    "crmn_viz/benchmarks.py",  # benchmarks compare named configurations
)


def _is_arch(node: ast.AST) -> bool:
    """``arch``, ``x.arch``, ``x["arch"]`` or ``x.get("arch")``."""
    if isinstance(node, ast.Name):
        return node.id == "arch"
    if isinstance(node, ast.Attribute):
        return node.attr == "arch"
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "arch"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "arch"
    return False


def _is_name_literal(node: ast.AST) -> bool:
    """A string, or a tuple/list/set of strings: architecture names written out."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(
            isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
        )
    return False


def arch_comparisons(source: str) -> list[int]:
    """Line numbers where an architecture is compared with written-out names (``==``, ``!=``, ``in``)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) and (
                (_is_arch(left) and _is_name_literal(right)) or (_is_arch(right) and _is_name_literal(left))
            ):
                lines.append(node.lineno)
    return lines


def _product_files() -> list[Path]:
    files = [*sorted((REPO / "crmn_viz").rglob("*.py")), *sorted((REPO / "app_pages").glob("*.py"))]
    files.append(REPO / "app.py")
    return [
        path for path in files if path.exists() and not path.relative_to(REPO).as_posix().startswith(ALLOWED)
    ]


def test_the_scanner_finds_every_form_of_arch_comparison() -> None:
    source = "\n".join(
        [
            'if model.arch == "crmn": pass',
            'if "rir" != model.arch: pass',
            'if model.arch in ("resnet", "crmn"): pass',
            'if card["arch"] == "renet": pass',
            'if card.get("arch") not in ["rir"]: pass',
            'ok = arch == "crmn"',
            "fine = model.arch == recipe.arch",  # two architectures compared: not a capability
            "fine = arch in ARCHITECTURES",
            'fine = model.has_memory and model.task == "keypoints"',
        ]
    )
    assert arch_comparisons(source) == [1, 2, 3, 4, 5, 6]


def test_no_code_outside_the_models_compares_architecture_names() -> None:
    offenders = {
        path.relative_to(REPO).as_posix(): lines
        for path in _product_files()
        if (lines := arch_comparisons(path.read_text(encoding="utf-8")))
    }
    assert not offenders, (
        "ask the model's capabilities (has_memory, sweep_names, stream_names, gradcam_layer, ...; "
        f"see crmn_viz.models.base.TracedModel) instead of comparing its arch: {offenders}"
    )


@pytest.mark.parametrize("arch", list_architectures())
def test_capabilities_are_consistent_with_the_trace_names(arch: str) -> None:
    model = create_model(arch, **TINY_CONFIGS[arch])
    names = set(model.trace_names())
    assert isinstance(model, model_class(arch)) and model.title
    assert model.has_memory == bool(model.memory_quantities)
    assert {f"lstm.{quantity}" for quantity in model.memory_quantities} <= names
    assert not model.has_stepwise_readout or model.has_memory
    assert len(model.gradcam_layers) == model.block_count > 0
    assert set(model.gradcam_layers) <= names
    for stream in model.stream_names:
        assert {model.gradcam_layer(block, stream) for block in range(model.block_count)} <= names
    for sweep in model.sweep_names:
        assert {f"layers.{layer}.{sweep}" for layer in range(model.block_count)} <= names


def test_capabilities_can_be_asked_of_an_architecture_before_building_one() -> None:
    assert model_class("crmn").has_memory and model_class("crmn").has_stepwise_readout
    assert model_class("renet").sweep_names and not model_class("renet").has_memory
    assert model_class("rir").stream_names == ("residual", "transient")
    assert not TracedModel.has_memory and TracedModel.memory_quantities == ()
    with pytest.raises(ValueError, match="unknown architecture"):
        model_class("vgg")


def test_a_model_without_blocks_explains_that_grad_cam_needs_a_layer() -> None:
    class Blockless(TracedModel):
        arch = "blockless"

    with pytest.raises(ValueError, match="pass layer="):
        Blockless().gradcam_layer(0)
    assert Blockless().gradcam_layers == ()


def test_every_view_states_its_needs_as_a_predicate_on_a_model() -> None:
    for key, view in VIEWS.items():
        assert callable(view.needs), key
        assert isinstance(view.applies_to(create_model("resnet", **TINY_CONFIGS["resnet"])), bool)
