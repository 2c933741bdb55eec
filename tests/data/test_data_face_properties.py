"""Property tests of the crop coordinate maps (need hypothesis)."""

from __future__ import annotations

import pytest
import torch

from crmn_viz.data import FaceBox, crop_to_image_coords, image_to_crop_coords

hypothesis = pytest.importorskip("hypothesis")
strategies = pytest.importorskip("hypothesis.strategies")

coordinate = strategies.floats(-1e4, 1e4, allow_nan=False)
side = strategies.floats(1.0, 1e4, allow_nan=False)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(left=coordinate, top=coordinate, side=side, x=coordinate, y=coordinate)
def test_crop_to_image_inverts_image_to_crop(
    left: float, top: float, side: float, x: float, y: float
) -> None:
    box = FaceBox(left, top, side)
    point = torch.tensor([[x, y]], dtype=torch.float64)
    round_trip = crop_to_image_coords(image_to_crop_coords(point, box), box)
    torch.testing.assert_close(round_trip, point, rtol=1e-12, atol=1e-9)


@hypothesis.settings(max_examples=200, deadline=None)
@hypothesis.given(
    left=coordinate,
    top=coordinate,
    side=side,
    u=strategies.floats(0, 1),
    v=strategies.floats(0, 1),
)
def test_unit_square_maps_inside_the_box(left: float, top: float, side: float, u: float, v: float) -> None:
    box = FaceBox(left, top, side)
    x, y = crop_to_image_coords(torch.tensor([u, v], dtype=torch.float64), box).tolist()
    tolerance = 1e-9 * max(1.0, abs(left), abs(top), side)
    assert left - tolerance <= x <= left + side + tolerance
    assert top - tolerance <= y <= top + side + tolerance
    back = image_to_crop_coords(torch.tensor([x, y], dtype=torch.float64), box)
    torch.testing.assert_close(back, torch.tensor([u, v], dtype=torch.float64), rtol=0, atol=1e-9)
