"""Load: 200 consecutive analyses through the Streamlit app, without exceptions or memory growth.

The whole app runs headless under :class:`streamlit.testing.v1.AppTest` against the tiny zoo
(``tests/app/conftest.py``), one session, as a visitor would use it: every run changes
something and reruns the script. The script cycles through pages (overview, LSTM memory,
attributions, and a page that does not apply to the model), new gallery selections (120
different triples, more than any result cache holds, so caches fill up and evict), image
uploads (a new picture each time) and back, and a switch between two checkpoints.

AppTest is fast enough here (about a quarter of a second per run on two busy cores with the
tiny models), so all 200 runs go through the real app rather than through the cached compute
functions alone. Memory is the resident set size (``/proc/self/status``; the peak from
``resource`` elsewhere), read after a garbage collection: after a warm-up that visits every
page and source once (imports, model loads, first figures), the size after 200 runs must stay
within 10% of the size after 20.
"""

from __future__ import annotations

import gc
import io
import itertools
import resource
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
RUNS = 200
MEASURE_AFTER = 20
PAGES = ("overview", "lstm_memory", "attributions", "rir_streams")
CHECKPOINTS = ("tiny-crmn", "tiny-resnet")


def resident_bytes() -> int:
    """The process's resident set size after a garbage collection."""
    gc.collect()
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def upload_png(index: int) -> bytes:
    """A different small picture for every upload."""
    buffer = io.BytesIO()
    colour = (index * 37 % 256, index * 91 % 256, index * 13 % 256)
    Image.new("RGB", (48, 40), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class Visitor:
    """Drives one app session through a fixed, varied script of actions."""

    def __init__(self, at: AppTest) -> None:
        self.at = at
        options = at.sidebar.multiselect(key="gallery_cifar10").options
        self.selections = list(itertools.combinations(options, 3))
        self.charts: list[int] = []

    def act(self, step: int) -> None:
        """One action, then one rerun of the script; checks that nothing raised."""
        at = self.at
        if step % 10 == 0:
            at.switch_page(f"app_pages/{PAGES[(step // 10) % len(PAGES)]}.py").run()
        elif step % 50 == 25:
            current = at.sidebar.selectbox(key="zoo_choice").value
            other = CHECKPOINTS[1 - CHECKPOINTS.index(current)] if current in CHECKPOINTS else CHECKPOINTS[0]
            at.sidebar.selectbox(key="zoo_choice").set_value(other).run()
        elif step % 20 == 5:
            at.sidebar.button_group(key="image_source").set_value("Upload").run()
            picture = (f"upload_{step}.png", upload_png(step), "image/png")
            at.sidebar.file_uploader(key="image_files").set_value(picture).run()
        elif step % 20 == 6:
            at.sidebar.button_group(key="image_source").set_value("Gallery").run()
        else:
            choice = self.selections[(7 * step) % len(self.selections)]
            at.sidebar.multiselect(key="gallery_cifar10").set_value(list(choice)).run()
        assert not at.exception, f"step {step}: {at.exception}"
        assert not at.error, f"step {step}: {[element.value for element in at.error]}"
        self.charts.append(len(at.get("plotly_chart")))


def test_two_hundred_analyses_without_exceptions_or_memory_growth(zoo: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=180).run()
    assert not at.exception, at.exception
    visitor = Visitor(at)
    for step in range(-2 * len(PAGES) * 10, 0):  # warm-up: every page, source and checkpoint once
        visitor.act(step)
    visitor.charts.clear()

    sizes: dict[int, int] = {}
    for step in range(RUNS):
        visitor.act(step)
        if step + 1 in (MEASURE_AFTER, RUNS):
            sizes[step + 1] = resident_bytes()

    assert len(visitor.charts) == RUNS
    drawn = sum(count > 0 for count in visitor.charts)
    assert drawn >= RUNS // 2, f"only {drawn} of {RUNS} runs drew a figure"
    early, late = sizes[MEASURE_AFTER], sizes[RUNS]
    assert late <= 1.10 * early, (
        f"memory grew from {early / 2**20:.0f} MiB after {MEASURE_AFTER} runs to {late / 2**20:.0f} MiB "
        f"after {RUNS} ({100 * (late / early - 1):.1f}%)"
    )
