"""Shared pieces of the robustness suite: the app's tiny checkpoint zoo and a memory meter.

The meter answers "did this call allocate a whole image?" without timing anything. It reads
three independent gauges, because none sees everything:

* Pillow's own block allocator statistics (``PIL.Image.core.get_stats``): image memory is
  malloc'ed in C by Pillow and is invisible to ``tracemalloc``; every image buffer Pillow
  creates is taken in blocks of at most ``get_block_size()`` bytes (16 MiB), so the number of
  blocks obtained during the call times the block size bounds the pixel memory from above.
* ``tracemalloc``'s peak: Python objects, ``bytes`` and numpy arrays made during the call.
* The growth of the process's peak resident set size, on Linux: ``/proc/self/clear_refs``
  resets the high-water mark ``VmHWM`` before the call, so afterwards it holds the call's
  peak. Memory that is written to (any decoder output) is resident, so a decode that fills
  a full-size buffer shows up here whatever allocator it used.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from tests.app.conftest import tiny_checkpoint_dir, zoo  # noqa: F401  (fixtures for the app tests here)

MiB = 1024 * 1024
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class MemoryUse:
    """What one call allocated.

    Attributes:
        pillow_bytes: Upper bound of the pixel memory Pillow allocated (blocks x block size).
        python_peak: ``tracemalloc`` peak during the call, bytes.
        rss_growth: Peak resident set size during the call minus the size before it, bytes;
            None where the kernel does not let a process reset its high-water mark.
    """

    pillow_bytes: int
    python_peak: int
    rss_growth: int | None

    def assert_below(self, bound: int, what: str) -> None:
        """Fail with every gauge in the message when any gauge reaches ``bound`` bytes."""
        readings = {"Pillow blocks": self.pillow_bytes, "tracemalloc peak": self.python_peak}
        if self.rss_growth is not None:
            readings["peak RSS growth"] = self.rss_growth
        summary = ", ".join(f"{name} {value / MiB:.1f} MiB" for name, value in readings.items())
        assert all(value < bound for value in readings.values()), (
            f"{what} allocated too much: {summary} (bound {bound / MiB:.0f} MiB)"
        )

    @property
    def largest(self) -> int:
        """The largest reading, bytes."""
        return max(self.pillow_bytes, self.python_peak, self.rss_growth or 0)


def _status_bytes(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _pillow_blocks() -> int:
    stats = Image.core.get_stats()
    return int(stats["allocated_blocks"]) + int(stats["reused_blocks"]) + int(stats["reallocated_blocks"])


def measure_memory(call: Callable[[], Any]) -> tuple[MemoryUse, Any]:
    """Run ``call()`` and return (what it allocated, its result or the exception it raised)."""
    gc.collect()
    before_rss = _status_bytes("VmRSS")
    can_reset = before_rss is not None and _reset_peak_rss()
    blocks_before = _pillow_blocks()
    already_tracing = tracemalloc.is_tracing()
    if already_tracing:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
    else:
        base = 0
        tracemalloc.start()
    try:
        try:
            outcome: Any = call()
        except Exception as exc:  # the caller inspects what was raised
            outcome = exc
        _, peak = tracemalloc.get_traced_memory()
        python_peak = peak - base
    finally:
        if not already_tracing:
            tracemalloc.stop()
    pillow_bytes = (_pillow_blocks() - blocks_before) * Image.core.get_block_size()
    peak_rss = _status_bytes("VmHWM") if can_reset else None
    rss_growth = None if peak_rss is None or before_rss is None else max(0, peak_rss - before_rss)
    return MemoryUse(pillow_bytes, python_peak, rss_growth), outcome
