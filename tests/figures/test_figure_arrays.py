"""Input conversions shared by the figure builders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from crmn_viz.figures.arrays import as_rgb_uint8, check_index, rgba, to_numpy


def test_images_in_every_accepted_layout_become_rgb_uint8() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    np.testing.assert_array_equal(as_rgb_uint8(grey), np.repeat(grey[..., None], 3, axis=-1))
    chw = torch.rand(3, 5, 6)
    converted = as_rgb_uint8(chw)
    assert converted.shape == (5, 6, 3) and converted.dtype == np.uint8
    np.testing.assert_array_equal(converted, np.rint(chw.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    normalised = as_rgb_uint8(torch.tensor([[[-2.0, 0.0], [1.0, 2.0]]]))  # [1, H, W], outside [0, 1]
    assert normalised[..., 0].tolist() == [[0, 128], [191, 255]]
    rgba_image = np.zeros((2, 2, 4), dtype=np.uint8)
    assert as_rgb_uint8(rgba_image).shape == (2, 2, 3)
    assert as_rgb_uint8(Image.new("L", (4, 3), 7)).shape == (3, 4, 3)
    assert as_rgb_uint8(np.ones((2, 2), dtype=bool)).max() == 255
    with pytest.raises(ValueError, match="an image must be"):
        as_rgb_uint8(np.zeros((2, 3, 5, 5)))


def test_small_helpers() -> None:
    assert to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float64
    assert check_index(-1, 3, "block") == 2
    with pytest.raises(ValueError, match="block 3 is out of range"):
        check_index(3, 3, "block")
    assert rgba("#0072B2", 0.25) == "rgba(0,114,178,0.25)"
