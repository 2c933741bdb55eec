"""Property tests of ``load_image`` on in-memory pictures and lossless pixels.

Bytes (random, corrupted real files, every mode and format) are fuzzed through both this
loader and the app's upload path in ``tests/robustness/test_hostile_images.py``.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmn_viz.images import load_image
from tests.images.conftest import IMAGE_MODES, random_image

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@given(
    mode=st.sampled_from(IMAGE_MODES),
    width=st.integers(1, 24),
    height=st.integers(1, 24),
    seed=st.integers(0, 2**16),
)
def test_in_memory_images_of_every_mode_load_as_rgb_of_the_same_size(
    mode: str, width: int, height: int, seed: int
) -> None:
    from_memory = load_image(random_image(mode, width, height, seed))
    assert from_memory.mode == "RGB"
    assert from_memory.size == (width, height)


@PROPERTY_SETTINGS
@given(width=st.integers(1, 24), height=st.integers(1, 24), seed=st.integers(0, 2**16))
def test_lossless_rgb_pixels_survive_exactly(width: int, height: int, seed: int) -> None:
    image = random_image("RGB", width, height, seed)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    np.testing.assert_array_equal(np.asarray(load_image(buffer.getvalue())), np.asarray(image))
