"""The Streamlit app, run headless with AppTest against a zoo of tiny checkpoints."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

from tests.app.conftest import png_bytes

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 180


def open_app(page: str | None = None, checkpoint: str | None = None) -> AppTest:
    """Run the app, go to ``pages/<page>.py`` and pick ``checkpoint`` in the sidebar."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    if page is not None:
        # AppTest keeps the entry file's widgets only after a page switch, so switch first.
        at.switch_page(f"app_pages/{page}.py").run()
    if checkpoint is not None:
        at.sidebar.selectbox(key="zoo_choice").set_value(checkpoint).run()
    assert not at.exception, at.exception
    return at


def open_tab(at: AppTest, key: str, label: str) -> AppTest:
    """Open one of a page's lazy tabs (only the open tab's figures are built)."""
    at.session_state[key] = label
    return at.run()


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def texts(elements) -> str:  # type: ignore[no-untyped-def]
    return " ".join(str(element.value) for element in elements)


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    data = bytearray(png_bytes((1, 1)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def test_app_opens_on_overview_with_a_zoo_model_and_gallery_images(zoo: Path) -> None:
    at = open_app()
    assert [title.value for title in at.title] == ["Overview"]
    options = at.sidebar.selectbox(key="zoo_choice").options
    assert options == [
        "tiny-crmn",
        "tiny-faces",
        "tiny-renet",
        "tiny-resnet",
        "tiny-rir",
    ]
    assert "CPU" in texts(at.sidebar.caption)
    assert at.session_state["selection"].name == "tiny-crmn"
    assert len(at.session_state["selection"].images) == 4
    assert charts(at) == 2  # prediction bar + per-step readout
    assert "Predicted class" in [metric.label for metric in at.metric]
    assert not at.error


@pytest.mark.parametrize(
    ("page", "checkpoint", "min_charts"),
    [
        ("overview", "tiny-resnet", 1),
        ("overview", "tiny-renet", 1),
        ("overview", "tiny-faces", 2),
        ("lstm_memory", "tiny-crmn", 2),
        ("renet_sweeps", "tiny-renet", 4),  # sweeps, patch grid, context reach, sweep gates
        ("blocks", "tiny-crmn", 1),
        ("blocks", "tiny-resnet", 1),
        ("blocks", "tiny-renet", 1),
        ("blocks", "tiny-rir", 1),
        ("rir_streams", "tiny-rir", 2),
        ("attributions", "tiny-crmn", 2),
        ("attributions", "tiny-resnet", 2),
        ("attributions", "tiny-renet", 2),
        ("attributions", "tiny-rir", 2),
        ("attributions", "tiny-faces", 2),
        ("face_keypoints", "tiny-faces", 2),
    ],
)
def test_every_page_draws_its_figures_without_exception(
    zoo: Path, page: str, checkpoint: str, min_charts: int
) -> None:
    at = open_app(page, checkpoint)
    assert at.session_state["selection"].name == checkpoint
    assert charts(at) >= min_charts
    assert not at.error, texts(at.error)
    assert not at.warning, texts(at.warning)
    assert at.get("download_button"), "every figure has download buttons"


@pytest.mark.parametrize(
    ("page", "checkpoint", "suggested"),
    [
        ("lstm_memory", "tiny-resnet", "tiny-crmn"),
        ("renet_sweeps", "tiny-crmn", "tiny-renet"),
        ("rir_streams", "tiny-crmn", "tiny-rir"),
        ("face_keypoints", "tiny-crmn", "tiny-faces"),
    ],
)
def test_pages_that_do_not_apply_say_so_and_suggest_a_checkpoint(
    zoo: Path, page: str, checkpoint: str, suggested: str
) -> None:
    at = open_app(page, checkpoint)
    message = texts(at.info)
    assert "does not apply" in message
    assert suggested in message
    assert charts(at) == 0
    at.button(key=f"use_{suggested}").click().run()
    assert not at.exception
    assert at.session_state["selection"].name == suggested
    assert charts(at) >= 1


def test_display_controls_reuse_cached_results(zoo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app("lstm_memory", "tiny-crmn")
    import crmn_viz.views.running as inference

    calls: list[int] = []
    original = inference.trace_images
    monkeypatch.setattr(inference, "trace_images", lambda *a, **k: calls.append(1) or original(*a, **k))
    at.selectbox(key="lstm_gate").set_value("input_gate").run()
    at.selectbox(key="image_index").select_index(2).run()
    assert not at.exception
    assert calls == [], "changing what is shown must not run the network again"


def test_lstm_memory_builds_only_the_open_tab(zoo: Path) -> None:
    at = open_app("lstm_memory", "tiny-crmn")
    assert charts(at) == 2  # the Gates tab: heatmap and trajectories, nothing of the other tabs
    for label, expected in (("Cell state", 1), ("Compare two images", 1), ("Animation", 1)):
        open_tab(at, "lstm_tab", label)
        assert not at.exception and charts(at) == expected, label


def test_lstm_memory_compares_two_images_and_shows_class_statistics(zoo: Path) -> None:
    at = open_tab(open_app("lstm_memory", "tiny-crmn"), "lstm_tab", "Compare two images")
    assert at.selectbox(key="lstm_a").value == 0 and at.selectbox(key="lstm_b").value == 1
    open_tab(at, "lstm_tab", "Class statistics")
    assert "10 gallery images" in texts(at.caption)
    at.button_group(key="lstm_units_mode").set_value("Range").run()
    assert not at.exception and charts(at) == 1


def test_attributions_accept_a_gate_unit_target(zoo: Path) -> None:
    at = open_app("attributions", "tiny-crmn")
    at.button_group(key="attr_kind").set_value("LSTM gate unit").run()
    assert not at.exception
    assert "lstm.forget_gate unit 0 at step 2" in texts(at.caption)
    assert charts(at) == 2


def test_uploaded_images_are_analysed_and_a_bad_upload_shows_an_error(zoo: Path) -> None:
    at = open_app("overview")
    at.sidebar.button_group(key="image_source").set_value("Upload").run()
    uploader = at.sidebar.file_uploader(key="image_files")

    uploader.set_value(("broken.png", png_bytes()[:60], "image/png")).run()
    assert not at.exception
    assert "broken.png" in texts(at.main.error) and "damaged" in texts(at.main.error)
    assert "broken.png" in texts(at.sidebar.warning)  # beside the upload, saying why
    assert charts(at) == 0
    at.switch_page("app_pages/attributions.py").run()  # another page does not repeat it
    assert not at.main.error and "broken.png" in texts(at.sidebar.warning)
    at.switch_page("app_pages/overview.py").run()

    at.sidebar.file_uploader(key="image_files").set_value(
        ("report.pdf", b"%PDF-1.7 ...", "application/pdf")
    ).run()
    assert "PDF document" in texts(at.error)

    at.sidebar.file_uploader(key="image_files").set_value(("huge.png", bomb_png(), "image/png")).run()
    assert "too large" in texts(at.error)

    at.sidebar.file_uploader(key="image_files").set_value(
        ("ship.png", png_bytes((64, 48)), "image/png")
    ).run()
    assert not at.exception and not at.error
    assert [image.name for image in at.session_state["selection"].images] == ["ship.png"]
    assert charts(at) == 2


def test_a_duplicate_upload_is_used_once_and_the_newest_upload_is_selected(zoo: Path) -> None:
    at = open_app("overview")
    at.sidebar.button_group(key="image_source").set_value("Upload").run()
    first, second = png_bytes((40, 30)), png_bytes((48, 36))
    files = [("a.png", first, "image/png"), ("b.png", first, "image/png")]
    at.sidebar.file_uploader(key="image_files").set_value(files).run()
    assert not at.exception and not at.error
    assert [image.name for image in at.session_state["selection"].images] == ["a.png"]
    assert "b.png is the same file as a.png" in texts(at.sidebar.caption)
    files = [("a.png", first, "image/png"), ("c.png", second, "image/png")]
    at.sidebar.file_uploader(key="image_files").set_value(files).run()
    picker = at.selectbox(key="image_index")
    assert picker.index == 1 and "c.png" in str(picker.format_func(picker.value))


def test_a_checkpoint_pair_can_be_uploaded(zoo: Path) -> None:
    at = open_app("overview")
    at.sidebar.button_group(key="ckpt_source").set_value("Upload").run()
    files = [
        ("my-resnet.safetensors", (zoo / "tiny-resnet.safetensors").read_bytes(), "application/octet-stream"),
        ("my-resnet.json", (zoo / "tiny-resnet.json").read_bytes(), "application/json"),
    ]
    at.sidebar.file_uploader(key="ckpt_files").set_value(files).run()
    assert not at.exception and not at.error, texts(at.error)
    selection = at.session_state["selection"]
    assert selection.name == "my-resnet" and selection.model.arch == "resnet"
    assert charts(at) >= 1


def test_a_wrong_checkpoint_upload_shows_an_error(zoo: Path) -> None:
    at = open_app("overview")
    at.sidebar.button_group(key="ckpt_source").set_value("Upload").run()
    at.sidebar.file_uploader(key="ckpt_files").set_value(
        [
            ("model.safetensors", (zoo / "tiny-crmn.safetensors").read_bytes(), "application/octet-stream"),
            ("model.json", (zoo / "tiny-resnet.json").read_bytes(), "application/json"),
        ]
    ).run()
    assert not at.exception
    assert "does not match its card" in texts(at.error)
    assert "selection" not in at.session_state


def test_export_page_lists_the_figures_seen(zoo: Path) -> None:
    at = open_app("lstm_memory", "tiny-crmn")
    at.switch_page("app_pages/export.py").run()
    assert not at.exception
    figures = at.multiselect(key="export_figures")
    assert any(name.startswith("tiny-crmn__gate_heatmap_forget_gate") for name in figures.options)
    assert len(figures.value) == 3
    registry = at.session_state["figure_registry"].entries
    entry = next(e for name, e in registry.items() if name.startswith("tiny-crmn__gate_heatmap_forget"))
    provenance = entry.provenance
    assert provenance.checkpoint == "tiny-crmn" and provenance.arch == "crmn"
    assert (
        provenance.weights_sha256 == hashlib.sha256((zoo / "tiny-crmn.safetensors").read_bytes()).hexdigest()
    )
    first = at.session_state["selection"].images[0]
    assert provenance.images == (first.record,)
    assert first.record.sha256 == hashlib.sha256(first_gallery_file(first.name).read_bytes()).hexdigest()
    assert dict(provenance.settings) == {"quantity": "forget_gate", "units": "all"}


def first_gallery_file(name: str) -> Path:
    (path,) = (Path(APP).parent / "crmn_viz" / "gallery").glob(f"*/{name}")
    return path


def test_the_same_figure_from_two_checkpoints_is_kept_twice_and_a_full_list_says_what_it_dropped(
    zoo: Path,
) -> None:
    at = open_app("overview", "tiny-crmn")
    at.sidebar.selectbox(key="zoo_choice").set_value("tiny-resnet").run()
    registry = at.session_state["figure_registry"].entries
    stem = "prediction_" + at.session_state["selection"].images[0].stem
    assert f"tiny-crmn__{stem}" in registry and f"tiny-resnet__{stem}" in registry
    assert registry[f"tiny-crmn__{stem}"].figure is not registry[f"tiny-resnet__{stem}"].figure

    figures = at.session_state["figure_registry"]
    figures.capacity = len(figures) + 1  # one more figure fits; the second new one drops the oldest
    oldest = next(iter(figures.entries))
    at.switch_page("app_pages/rir_streams.py")
    at.sidebar.selectbox(key="zoo_choice").set_value("tiny-rir")
    at.run()
    assert len(figures) == figures.capacity
    at.switch_page("app_pages/export.py").run()
    assert not at.exception
    assert figures.dropped and figures.dropped[0] == oldest
    assert "dropped" in texts(at.warning) and oldest in texts(at.warning)


def test_export_page_without_figures_explains_what_to_do(zoo: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.session_state["figure_registry"] = {}
    at.switch_page("app_pages/export.py").run()
    assert not at.exception
    assert "Open the other pages first" in texts(at.info)


def test_a_camera_photo_is_analysed_by_a_keypoint_model(zoo: Path) -> None:
    at = open_app("face_keypoints", "tiny-faces")
    at.sidebar.button_group(key="image_source").set_value("Camera").run()
    photo = (Path(APP).parent / "crmn_viz" / "gallery" / "faces68" / "tr_Maggie_Cheung_50.jpg").read_bytes()
    at.sidebar.camera_input(key="camera").upload("photo.jpg", photo).run()
    assert not at.exception
    images = at.session_state["selection"].images
    assert len(images) == 1 and images[0].source == "camera"
    assert charts(at) >= 1 or at.warning, "either keypoints are drawn or the page says no face was found"


def test_an_empty_zoo_points_to_the_upload(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "No checkpoints" in texts(at.sidebar.info)
    assert "Choose a checkpoint in the sidebar" in texts(at.main.info)


def test_class_statistics_over_test_images(zoo: Path) -> None:
    from crmn_viz.data import resolve_data_dir

    if not (resolve_data_dir() / "cifar10-jpeg.zip").exists():
        pytest.skip("the CIFAR-10 test set is not on this machine")
    at = open_tab(open_app("lstm_memory", "tiny-crmn"), "lstm_tab", "Class statistics")
    at.button_group(key="lstm_stats_source").set_value("Test images of cifar10").run()
    at.number_input(key="lstm_stats_count").set_value(100).run()
    at.button(key="lstm_stats_go").click().run()
    assert not at.exception and not at.warning
    assert "100 test images spread over every class" in texts(at.caption)


def test_asking_for_test_statistics_without_the_test_set_says_so(
    zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The click must reach the page even when the page reruns itself first (``page_start``)."""
    monkeypatch.setenv("CRMN_VIZ_DATA_DIR", str(tmp_path))
    at = open_tab(open_app("lstm_memory", "tiny-crmn"), "lstm_tab", "Class statistics")
    at.button_group(key="lstm_stats_source").set_value("Test images of cifar10").run()
    assert not at.warning, "nothing is computed before the button is pressed"
    at.button(key="lstm_stats_go").click().run()
    assert not at.exception
    assert "The cifar10 test set is not on this machine" in texts(at.warning)
    assert at.session_state["lstm_stats_test"] == at.number_input(key="lstm_stats_count").value


def test_a_fresh_server_opened_at_a_page_link_runs_the_page_through_app_py(zoo: Path) -> None:
    """The page files live in ``app_pages/``, not ``pages/``, so Streamlit never starts its legacy
    multipage mode: a first session opened at a page link runs ``app.py`` and its navigation."""
    from streamlit.runtime.pages_manager import PagesManager

    assert not (Path(APP).parent / "pages").exists()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("app_pages/attributions.py")  # the link is opened before anything else ran
    at.run()
    assert not at.exception, at.exception
    assert not PagesManager.uses_pages_directory
    assert [title.value for title in at.title] == ["Attributions"]
    assert at.sidebar.selectbox(key="zoo_choice").value == "tiny-crmn"


def test_every_page_link_is_its_file_name() -> None:
    """Every page file is in the navigation, and its link is its file name (links stay stable)."""
    import ast

    tree = ast.parse(Path(APP).read_text())
    pages = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page"
    ]
    assert len(pages) == len(list((Path(APP).parent / "app_pages").glob("*.py")))
    for page in pages:
        script = page.args[0].value  # type: ignore[attr-defined]
        url_path = next(k.value.value for k in page.keywords if k.arg == "url_path")  # type: ignore[attr-defined]
        assert url_path == Path(script).stem, script


def _chart_specs(at: AppTest) -> list[str]:
    return [element.proto.spec for element in at.get("plotly_chart")]


def _other_weights(zoo: Path) -> bytes:
    """tiny-crmn's weights file with every floating-point tensor changed (same names and shapes)."""
    from safetensors.torch import load as load_safetensors
    from safetensors.torch import save as save_safetensors

    state = load_safetensors((zoo / "tiny-crmn.safetensors").read_bytes())
    changed = {key: -value if value.is_floating_point() else value for key, value in state.items()}
    return save_safetensors(changed, metadata={"format": "pt", "arch": "crmn"})


def _upload_pair(at: AppTest, weights: bytes, card: bytes) -> None:
    at.sidebar.button_group(key="ckpt_source").set_value("Upload").run()
    at.sidebar.file_uploader(key="ckpt_files").set_value(
        [
            ("tiny-crmn.safetensors", weights, "application/octet-stream"),
            ("tiny-crmn.json", card, "application/json"),
        ]
    ).run()


def test_a_forged_upload_is_refused_and_no_result_crosses_between_sessions(zoo: Path) -> None:
    """A zoo card over other weights must neither load nor share the zoo model's cached results."""
    import json

    zoo_session = open_app("overview", "tiny-crmn")
    zoo_charts = _chart_specs(zoo_session)
    assert zoo_charts

    forger = open_app("overview")
    _upload_pair(forger, _other_weights(zoo), (zoo / "tiny-crmn.json").read_bytes())
    assert not forger.exception
    assert "belongs to other weights" in texts(forger.error)
    assert "selection" not in forger.session_state

    # The same weights under a card that claims no digest load, under a key of their own.
    card = json.loads((zoo / "tiny-crmn.json").read_text())
    del card["weights_sha256"]
    other = open_app("overview")
    _upload_pair(other, _other_weights(zoo), json.dumps(card).encode())
    assert not other.exception and not other.error, texts(other.error)
    assert other.session_state["selection"].key != zoo_session.session_state["selection"].key
    assert _chart_specs(other) != zoo_charts  # the upload's own answers, not the zoo model's

    # A later visitor of the zoo model, after the upload computed, still sees the zoo's answers.
    later = open_app("overview", "tiny-crmn")
    assert _chart_specs(later) == zoo_charts
