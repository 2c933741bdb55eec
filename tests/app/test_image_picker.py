"""The image picker keeps the visitor's choice: across pages, and across a checkpoint switch.

Found in the browser benchmark: after switching to a keypoint checkpoint, the Face page showed
the second gallery photo (a gallery change was taken for a new upload), and on the next visit,
after a page without a picker, the first (Streamlit forgets the state of a widget a page does not
draw), so the page recomputed and showed another face.
"""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def chosen_name(at: AppTest) -> str:
    return str(at.selectbox(key="image_index").format_func(at.selectbox(key="image_index").value))


def test_a_checkpoint_switch_does_not_jump_to_the_last_gallery_image(zoo: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.switch_page("app_pages/export.py").run()
    at.selectbox(key="zoo_choice").set_value("tiny-faces").run()
    at.switch_page("app_pages/face_keypoints.py").run()
    assert not at.exception
    first = at.session_state["selection"].images[0].name
    assert chosen_name(at) == f"1. {first}"


def test_the_chosen_image_survives_a_page_without_a_picker(zoo: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=180).run()
    images = at.session_state["selection"].images
    assert len(images) >= 2
    at.selectbox(key="image_index").set_value(f"1:{images[1].digest}").run()
    second = f"2. {images[1].name}"
    assert chosen_name(at) == second
    at.switch_page("app_pages/export.py").run()  # no picker on this page
    at.switch_page("app_pages/lstm_memory.py").run()
    assert not at.exception
    assert chosen_name(at) == second
