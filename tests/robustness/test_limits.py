"""Resource limits: defaults, environment overrides, invalid values, and refusals beyond them."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from crmn_viz.limits import ENV_PREFIX, LIMITS, Limits
from crmn_viz.models.base import TracedModel

REPO = Path(__file__).resolve().parents[2]
ENV_NAMES = [Limits.env_name(spec.name) for spec in dataclasses.fields(Limits)]

HISTORIC_DEFAULTS = {
    # The values that lived in each module before crmn_viz.limits gathered them.
    "max_upload_bytes": 15 * 1024 * 1024,
    "max_upload_pixels": 25_000_000,
    "max_image_bytes": 20 * 1024 * 1024,
    "max_image_pixels": 40_000_000,
    "max_aspect_ratio": 50.0,
    "max_images_per_request": 32,
    "max_attribution_steps": 512,
    "max_attribution_samples": 512,
    "max_attribution_windows": 16384,
    "max_attribution_batch": 512,
    "max_statistics_images": 10_000,
    "max_export_dpi": 1200,
    "max_checkpoint_bytes": 300 * 1024 * 1024,
    "max_card_bytes": 1_000_000,
    "max_header_bytes": 10_000_000,
    "max_parameters": 300_000_000,
}


def no_limit_variables() -> bool:
    return not any(name.startswith(ENV_PREFIX + "MAX_") for name in os.environ)


# --------------------------------------------------------------------------- defaults


def test_defaults_keep_the_values_each_module_had() -> None:
    defaults = Limits()
    for name, value in HISTORIC_DEFAULTS.items():
        assert getattr(defaults, name) == value, name


@pytest.mark.skipif(not no_limit_variables(), reason="CRMN_VIZ_MAX_* variables are set in this environment")
def test_the_library_defaults_come_from_the_limits() -> None:
    from crmn_viz import checkpoints
    from crmn_viz.analysis import AttributionLimits
    from crmn_viz.images import DEFAULT_IMAGE_LIMITS, ImageLimits
    from crmn_viz.inputs import uploads

    assert Limits() == LIMITS
    assert ImageLimits() == DEFAULT_IMAGE_LIMITS == LIMITS.image_limits()
    assert (ImageLimits().max_pixels, ImageLimits().max_bytes, ImageLimits().max_aspect_ratio) == (
        40_000_000,
        20 * 1024 * 1024,
        50.0,
    )
    assert AttributionLimits() == LIMITS.attribution_limits() == AttributionLimits(512, 512, 16384, 512)
    assert LIMITS.upload_image_limits() == uploads.UPLOAD_IMAGE_LIMITS
    assert (uploads.UPLOAD_IMAGE_LIMITS.max_pixels, uploads.UPLOAD_IMAGE_LIMITS.max_bytes) == (
        25_000_000,
        15 * 1024 * 1024,
    )
    assert uploads.MAX_IMAGES_PER_UPLOAD == 32
    assert uploads.MAX_CHECKPOINT_BYTES == 300 * 1024 * 1024
    assert checkpoints.MAX_PARAMETERS == 300_000_000
    assert checkpoints.MAX_CARD_BYTES == 1_000_000 and checkpoints.MAX_HEADER_BYTES == 10_000_000
    assert LIMITS.max_tensors == checkpoints.MAX_TENSORS
    assert LIMITS.max_metadata_bytes == checkpoints.MAX_METADATA_BYTES


def test_limits_are_frozen_documented_and_validated() -> None:
    limits = Limits()
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_export_dpi = 10  # type: ignore[misc]
    described = list(limits.describe())
    assert [spec.env for spec in described] == ENV_NAMES
    assert all(spec.doc and spec.value == spec.default for spec in described)
    assert all(re.fullmatch(r"CRMN_VIZ_MAX_[A-Z_]+", name) for name in ENV_NAMES)
    for bad in (
        {"max_export_dpi": 0},
        {"max_parameters": -1},
        {"max_aspect_ratio": 0.5},
        {"max_tensors": 1.5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Limits(**bad)


def test_the_readme_documents_every_variable() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Limits and threat model") :]
    section = section[: section.index("\n## ", 3)]
    missing = [name for name in ENV_NAMES if name not in section]
    assert not missing, f"undocumented in README: {missing}"


# --------------------------------------------------------------------------- environment


def test_environment_overrides_each_field() -> None:
    environ = {
        "CRMN_VIZ_MAX_UPLOAD_BYTES": "5_242_880",
        "CRMN_VIZ_MAX_ATTRIBUTION_STEPS": " 64 ",
        "CRMN_VIZ_MAX_ASPECT_RATIO": "20",
        "CRMN_VIZ_MAX_EXPORT_DPI": "600.5",
        "CRMN_VIZ_DATA_DIR": "/somewhere",  # not a limit: ignored
    }
    limits = Limits.from_env(environ)
    assert limits.max_upload_bytes == 5 * 1024 * 1024
    assert limits.max_attribution_steps == 64
    assert limits.max_aspect_ratio == 20.0 and limits.max_export_dpi == 600.5
    assert limits.max_parameters == Limits().max_parameters, "fields not set keep their default"
    assert limits.attribution_limits().max_steps == 64
    assert limits.upload_image_limits().max_bytes == 5 * 1024 * 1024
    assert limits.upload_image_limits().max_aspect_ratio == 20.0
    every = Limits.from_env({name: "7" for name in ENV_NAMES})
    assert all(getattr(every, spec.name) == 7 for spec in dataclasses.fields(Limits))


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CRMN_VIZ_MAX_UPLOAD_BYTES", "lots"),
        ("CRMN_VIZ_MAX_UPLOAD_BYTES", ""),
        ("CRMN_VIZ_MAX_UPLOAD_BYTES", "15MB"),
        ("CRMN_VIZ_MAX_UPLOAD_BYTES", "1.5"),
        ("CRMN_VIZ_MAX_UPLOAD_BYTES", "1e6"),
        ("CRMN_VIZ_MAX_IMAGE_PIXELS", "0"),
        ("CRMN_VIZ_MAX_PARAMETERS", "-300"),
        ("CRMN_VIZ_MAX_ATTRIBUTION_STEPS", "true"),
        ("CRMN_VIZ_MAX_ASPECT_RATIO", "0.9"),
        ("CRMN_VIZ_MAX_EXPORT_DPI", "nan"),
        ("CRMN_VIZ_MAX_EXPORT_INCHES", "inf"),
        ("CRMN_VIZ_MAX_EXPORT_INCHES", "-1"),
    ],
)
def test_invalid_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError) as caught:
        Limits.from_env({variable: value})
    message = str(caught.value)
    assert variable in message and repr(value) in message and "expected" in message, message


def test_an_unknown_limit_variable_is_reported() -> None:
    with pytest.warns(UserWarning, match="CRMN_VIZ_MAX_UPLOAD_MEGABYTES"):
        Limits.from_env({"CRMN_VIZ_MAX_UPLOAD_MEGABYTES": "5"})


def run_python(code: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX + "MAX_")}
    env.update(environ)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_overrides_reach_every_subsystem_when_the_app_starts() -> None:
    code = """
import json
from crmn_viz import checkpoints
from crmn_viz.analysis import AttributionLimits
from crmn_viz.inputs import uploads
from crmn_viz.images import ImageLimits
print(json.dumps({
    "image_pixels": ImageLimits().max_pixels,
    "upload_bytes": uploads.UPLOAD_IMAGE_LIMITS.max_bytes,
    "per_upload": uploads.MAX_IMAGES_PER_UPLOAD,
    "checkpoint_bytes": uploads.MAX_CHECKPOINT_BYTES,
    "steps": AttributionLimits().max_steps,
    "parameters": checkpoints.MAX_PARAMETERS,
}))
"""
    result = run_python(
        code,
        CRMN_VIZ_MAX_IMAGE_PIXELS="1000000",
        CRMN_VIZ_MAX_UPLOAD_BYTES="2048",
        CRMN_VIZ_MAX_IMAGES_PER_REQUEST="4",
        CRMN_VIZ_MAX_CHECKPOINT_BYTES="4096",
        CRMN_VIZ_MAX_ATTRIBUTION_STEPS="16",
        CRMN_VIZ_MAX_PARAMETERS="1000",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "image_pixels": 1_000_000,
        "upload_bytes": 2048,
        "per_upload": 4,
        "checkpoint_bytes": 4096,
        "steps": 16,
        "parameters": 1000,
    }


def test_an_invalid_variable_stops_the_app_at_start_up() -> None:
    result = run_python("import crmn_viz", CRMN_VIZ_MAX_UPLOAD_BYTES="a lot")
    assert result.returncode != 0
    assert "ValueError" in result.stderr and "CRMN_VIZ_MAX_UPLOAD_BYTES='a lot'" in result.stderr


# --------------------------------------------------------------------------- refusals beyond the limits


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def model() -> TracedModel:
    from tests.conftest import tiny_model

    return tiny_model("resnet", num_outputs=3, input_size=16)


def test_attribution_steps_above_the_limit_are_refused_with_a_readable_message(
    model: TracedModel, picture: Image.Image
) -> None:
    from crmn_viz.analysis import attribute

    with pytest.raises(ValueError) as caught:
        attribute(model, picture, "integrated_gradients", n_steps=LIMITS.max_attribution_steps + 1)
    message = str(caught.value)
    assert (
        f"n_steps={LIMITS.max_attribution_steps + 1} is above the limit {LIMITS.max_attribution_steps}"
        in message
    )
    assert "CRMN_VIZ_MAX_ATTRIBUTION_STEPS" in message

    small = Limits(max_attribution_steps=8, max_attribution_samples=8).attribution_limits()
    with pytest.raises(ValueError, match="n_steps=9 is above the limit 8"):
        attribute(model, picture, "integrated_gradients", n_steps=9, limits=small)
    with pytest.raises(ValueError, match="CRMN_VIZ_MAX_ATTRIBUTION_SAMPLES"):
        attribute(model, picture, "gradient_shap", n_samples=9, limits=small)
    result = attribute(model, picture, "integrated_gradients", n_steps=8, limits=small)
    assert result.options["n_steps"] == 8


def test_the_gradio_demo_shows_the_attribution_limit_as_an_error(zoo: Path, tmp_path: Path) -> None:
    gr = pytest.importorskip("gradio")
    from crmn_viz.frontends import gradio_app

    image = tmp_path / "cat.png"
    Image.new("RGB", (32, 32), (120, 60, 30)).save(image)
    gradio_app.cached_model.cache_clear()
    try:
        with pytest.raises(gr.Error, match="above the limit"):
            gradio_app.attribute_handler(str(image), "tiny-crmn", "integrated_gradients", -1, 100_000)
    finally:
        gradio_app.cached_model.cache_clear()


@pytest.fixture
def no_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser that does not exist: reaching the rendering step would fail differently."""
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))


def line_figure(**layout: float) -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[1, 3, 2]), layout=layout)


@pytest.mark.usefixtures("no_browser")
def test_export_beyond_the_dpi_limit_is_refused_before_drawing(tmp_path: Path) -> None:
    from crmn_viz.figures import FigureExportError, export_figure, export_figures

    out = tmp_path / "out"
    with pytest.raises(FigureExportError) as caught:
        export_figure(line_figure(), out / "figure.png", dpi=LIMITS.max_export_dpi * 2)
    message = str(caught.value)
    assert "above the limit" in message and "CRMN_VIZ_MAX_EXPORT_DPI" in message
    with pytest.raises(FigureExportError, match="dpi"):
        export_figures({"a": line_figure()}, out, formats=("html",), dpi=10**6)
    with pytest.raises(ValueError, match="dpi must be"):
        export_figure(line_figure(), out / "figure.png", dpi=-1)
    assert not out.exists(), "nothing is written when an export is refused"


@pytest.mark.usefixtures("no_browser")
def test_export_beyond_the_size_limit_is_refused_before_drawing(tmp_path: Path) -> None:
    from crmn_viz.figures import FigureExport, FigureExportError, export_figure, export_figures

    out = tmp_path / "out"
    too_long = LIMITS.max_export_inches + 1
    with pytest.raises(FigureExportError, match=r"width_in=.* above the limit .*CRMN_VIZ_MAX_EXPORT_INCHES"):
        export_figure(line_figure(), out / "wide.svg", width_in=too_long, height_in=2)
    with pytest.raises(FigureExportError, match="height_in"):
        export_figures([FigureExport("tall", line_figure(), height_in=too_long)], out, formats=("html",))
    with pytest.raises(FigureExportError, match="height_in"):  # a size from the figure's own layout
        export_figures({"huge": line_figure(width=300, height=96 * 10_000)}, out, formats=("json",))
    with pytest.raises(FigureExportError, match=r"megapixels.*CRMN_VIZ_MAX_EXPORT_PIXELS"):
        export_figure(line_figure(), out / "big.png", width_in=40, height_in=40, dpi=1000)
    assert not out.exists()
    written = export_figures({"fine": line_figure()}, out, formats=("html",))
    assert [path.name for path in written] == ["fine.html"], "ordinary figures are still exported"


@pytest.mark.usefixtures("no_browser")
def test_the_export_checks_read_the_limits_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crmn_viz.figures import FigureExportError, export_figures
    from crmn_viz.figures import export as export_module

    monkeypatch.setattr(export_module, "LIMITS", Limits(max_export_dpi=100, max_export_inches=3))
    with pytest.raises(FigureExportError, match="dpi=150"):
        export_figures({"a": line_figure()}, tmp_path, formats=("html",), dpi=150)
    with pytest.raises(FigureExportError, match="width_in=3.5"):
        export_figures({"a": line_figure()}, tmp_path, formats=("html",), dpi=100)


@pytest.mark.usefixtures("no_browser")
def test_an_export_bundle_with_too_many_figures_is_refused() -> None:
    from crmn_viz.figures import FigureExportError
    from crmn_viz.figures.files import FigureItem, export_bundle

    items = [FigureItem(f"figure_{k}", line_figure()) for k in range(LIMITS.max_export_figures + 1)]
    with pytest.raises(
        FigureExportError, match=r"above the limit of \d+ per export.*CRMN_VIZ_MAX_EXPORT_FIGURES"
    ):
        export_bundle(items, formats=("html",))
    bundle = export_bundle(items[:2], formats=("html",))
    assert bundle.name.endswith(".zip")


def test_upload_limits_from_a_limits_object_are_applied() -> None:
    from crmn_viz.inputs.uploads import decode_image_uploads
    from tests.app.conftest import png_bytes

    strict = Limits(max_upload_pixels=100, max_upload_bytes=10_000).upload_image_limits()
    result = decode_image_uploads(
        [("small.png", png_bytes((10, 10))), ("big.png", png_bytes((20, 20)))], strict
    )
    assert [image.name for image in result.images] == ["small.png"]
    assert len(result.errors) == 1 and "big.png: " in result.errors[0] and "too large" in result.errors[0]
