"""End to end: serve the app with ``streamlit run`` and drive it in Chromium with Playwright.

Needs Node.js (>= 20), Chromium (``/usr/bin/chromium`` or ``$BROWSER_PATH``) and the npm package
``playwright-core`` installed next to this file (``npm ci --prefix tests/app``); skipped otherwise.
Screenshots of every step go to ``artifacts/screenshots/`` (or ``$CRMN_VIZ_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.conftest import png_bytes

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER = HERE / "browser_check.mjs"
CHROMIUM = os.environ.get("BROWSER_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def _node_major() -> int:
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout
        return int(version.strip().lstrip("v").split(".")[0])
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if _node_major() < 20:
        return "playwright-core needs Node.js 20 or newer"
    if not Path(CHROMIUM).exists():
        return "Chromium is not installed"
    if not (HERE / "node_modules" / "playwright-core").exists():
        return "playwright-core is not installed: run `npm ci --prefix tests/app`"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_healthy(url: str, server: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("streamlit did not become healthy")


def test_every_page_works_in_a_real_browser(tiny_checkpoint_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    screenshots = Path(os.environ.get("CRMN_VIZ_SCREENSHOT_DIR", REPO / "artifacts" / "screenshots"))
    good, bad = tmp_path / "ship.png", tmp_path / "broken.png"
    second, truncated = tmp_path / "second.png", tmp_path / "truncated.png"
    from PIL import Image

    gallery = REPO / "crmn_viz" / "gallery"
    Image.open(gallery / "cifar10" / "ship_0523.png").resize((96, 96)).save(good)
    Image.open(gallery / "cifar10" / "cat_0911.png").resize((64, 64)).save(second)
    bad.write_bytes(png_bytes()[:60])
    truncated.write_bytes(png_bytes((50, 20))[:80])
    face = tmp_path / "face.jpg"  # a real face photo under a name that is not a gallery name
    shutil.copyfile(gallery / "faces68" / "tr_Clark_Randt_10.jpg", face)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {
                "url": url,
                "out": str(screenshots),
                "image": str(good),
                "bad_image": str(bad),
                "second_image": str(second),
                "truncated_image": str(truncated),
                "face_image": str(face),
                "gallery": {
                    folder.name: sorted(p.name for p in folder.iterdir() if p.suffix in {".png", ".jpg"})
                    for folder in sorted(gallery.iterdir())
                    if folder.is_dir()
                },
                "chromium": CHROMIUM,
                "checkpoints": {
                    "crmn": "tiny-crmn",
                    "renet": "tiny-renet",
                    "rir": "tiny-rir",
                    "faces": "tiny-faces",
                },
            }
        )
    )
    env = {**os.environ, "CRMN_VIZ_CHECKPOINT_DIR": str(tiny_checkpoint_dir)}
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log = (tmp_path / "streamlit.log").open("w")
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_healthy(url, server)
        run = subprocess.run(
            ["node", str(DRIVER), str(plan)], cwd=REPO, capture_output=True, text=True, timeout=600
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    steps = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    failed = [step for step in steps if not step["ok"]]
    assert run.returncode == 0 and not failed, (
        failed,
        run.stderr[-2000:],
        (tmp_path / "streamlit.log").read_text()[-3000:],
    )
    names = [step["step"] for step in steps if "screenshot" in step]
    assert names[:4] == [
        "01_overview_gallery",
        "01b_figure_downloads",
        "02_overview_bad_upload",
        "03_overview_upload",
    ]
    assert "13_export" in names
    assert names[-6:] == [  # the state steps of issue 18
        "14_face_layout_after_upload",
        "15_newest_upload_selected",
        "16_duplicate_upload_once",
        "17_bad_upload_on_its_page",
        "18_bad_upload_not_repeated",
        "19_gallery_after_upload",
    ]
    downloads = [step["file"] for step in steps if step["step"] == "download"]
    assert [Path(name).suffix for name in downloads] == [".png", ".csv"]
    assert all(Path(step["screenshot"]).exists() for step in steps if "screenshot" in step)
