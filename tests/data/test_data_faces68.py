"""faces68: crop geometry, mirror permutation and keypoint-consistent augmentation."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from crmn_viz.data import (
    FACE68_FLIP_PERMUTATION,
    AffineParams,
    FaceBox,
    FaceCropTransform,
    Faces68Dataset,
    KeypointAugmentation,
    apply_affine,
    build_dataset,
    crop_and_resize,
    crop_to_image_coords,
    dataset_info,
    face_box_from_keypoints,
    image_to_crop_coords,
    read_keypoint_csv,
)

# The pairs as listed in the iBUG 68-point scheme (subject's right <-> left).
IBUG_MIRROR_PAIRS = [
    *[(i, 16 - i) for i in range(8)],
    (17, 26), (18, 25), (19, 24), (20, 23), (21, 22),
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    (60, 64), (61, 63), (65, 67),
]  # fmt: skip
MIDLINE_POINTS = {8, 27, 28, 29, 30, 33, 51, 57, 62, 66}


@pytest.fixture(scope="module")
def test_keypoints(faces68_data_dir: Path) -> torch.Tensor:
    _, keypoints = read_keypoint_csv(faces68_data_dir / "faces68" / "test.csv")
    return keypoints


def test_flip_permutation_is_the_ibug_mirror() -> None:
    permutation = FACE68_FLIP_PERMUTATION
    assert sorted(permutation) == list(range(68))
    assert all(permutation[permutation[i]] == i for i in range(68))
    for right, left in IBUG_MIRROR_PAIRS:
        assert permutation[right] == left and permutation[left] == right
    assert {i for i in range(68) if permutation[i] == i} == MIDLINE_POINTS


def test_flip_permutation_matches_the_data(test_keypoints: torch.Tensor) -> None:
    """On near-frontal faces, each mirrored point's nearest neighbour is its pair."""
    points = test_keypoints.double()
    centred = points - points.mean(dim=1, keepdim=True)
    shapes = centred / centred.norm(dim=2).mean(dim=1).view(-1, 1, 1)
    eye_midpoint_x = (shapes[:, 36, 0] + shapes[:, 45, 0]) / 2
    frontal = (shapes[:, 30, 0] - eye_midpoint_x).abs() < 0.05
    assert frontal.sum() > 50
    mean_shape = shapes[frontal].mean(dim=0)
    mirrored = mean_shape * torch.tensor([-1.0, 1.0])
    nearest = torch.cdist(mean_shape, mirrored).argmin(dim=1)
    assert nearest.tolist() == list(FACE68_FLIP_PERMUTATION)
    # The data uses the iBUG orientation: point 36 (subject's right eye) is on image left.
    assert bool((test_keypoints[:, 36, 0] < test_keypoints[:, 45, 0]).all())


def test_face_box_rule() -> None:
    keypoints = torch.tensor([[10.0, 20.0], [50.0, 20.0], [30.0, 40.0]])
    box = face_box_from_keypoints(keypoints, margin=1.4)
    assert box.side == pytest.approx(56.0)  # 1.4 * max(40, 20)
    assert box.center == pytest.approx((30.0, 30.0))
    assert box.left == pytest.approx(2.0) and box.top == pytest.approx(2.0)


def test_crop_coords_invert_exactly() -> None:
    generator = torch.Generator().manual_seed(3)
    points = torch.rand(200, 2, generator=generator, dtype=torch.float64) * 500 - 50
    box = FaceBox(left=-12.5, top=37.25, side=173.0)
    points01 = image_to_crop_coords(points, box)
    torch.testing.assert_close(crop_to_image_coords(points01, box), points)


def test_crop_and_resize_transform_agrees_with_normalised_coords() -> None:
    image = torch.zeros(3, 120, 150, dtype=torch.uint8)
    box = FaceBox(20.0, 10.0, 90.0)
    crop, image_to_crop = crop_and_resize(image, box, 80)
    assert crop.shape == (3, 80, 80) and crop.dtype == torch.uint8
    points = torch.tensor([[20.0, 10.0], [110.0, 100.0], [65.0, 55.0]], dtype=torch.float64)
    expected = image_to_crop_coords(points, box) * 80 - 0.5
    torch.testing.assert_close(apply_affine(points, image_to_crop), expected)


def test_dataset_items_and_mapping_back(faces68_data_dir: Path) -> None:
    dataset = build_dataset("faces68", "test", data_dir=faces68_data_dir)
    assert isinstance(dataset, Faces68Dataset) and len(dataset) == 729
    assert dataset_info("faces68").num_outputs == 136
    for index in (0, 100, 728):
        image, keypoints01 = dataset[index]
        assert image.shape == (3, 80, 80) and image.dtype == torch.float32
        assert keypoints01.shape == (68, 2)
        assert bool(((keypoints01 >= 0) & (keypoints01 <= 1)).all())
        back = crop_to_image_coords(keypoints01, dataset.face_box(index))
        torch.testing.assert_close(back, dataset.keypoints_in_image(index), atol=1e-3, rtol=0)
    clone = pickle.loads(pickle.dumps(dataset))
    torch.testing.assert_close(clone[5][1], dataset[5][1])


def test_augmented_training_keypoints_stay_in_unit_square(
    faces68_data_dir: Path,
) -> None:
    torch.manual_seed(0)
    dataset = build_dataset("faces68", "train", data_dir=faces68_data_dir)
    assert dataset.transform.augmentation is not None
    for index in range(0, 3000, 500):
        image, keypoints01 = dataset[index]
        assert image.shape == (3, 80, 80)
        assert bool(((keypoints01 >= 0) & (keypoints01 <= 1)).all())


def _synthetic_face(seed: int) -> torch.Tensor:
    """68 random points spread like a face (about 100 x 120 px) in a 240 x 260 image."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(68, 2, generator=generator, dtype=torch.float64)
    return (unit * torch.tensor([100.0, 120.0]) + torch.tensor([80.0, 60.0])).float()


def test_flip_twice_is_identity_and_mirrors_the_eyes() -> None:
    keypoints = _synthetic_face(0)
    image = torch.randint(0, 256, (3, 240, 260), dtype=torch.uint8)
    transform = FaceCropTransform(size=80)
    plain_image, plain_points = transform.apply(image, keypoints, AffineParams())
    flip_image, flip_points = transform.apply(image, keypoints, AffineParams(flip=True))

    torch.testing.assert_close(flip_image, plain_image.flip(-1), atol=1.5 / 255, rtol=0)
    # The subject's right eye outer corner (36) lands where the mirrored 45 was.
    mirrored_45 = torch.stack([1 - plain_points[45, 0], plain_points[45, 1]])
    torch.testing.assert_close(flip_points[36], mirrored_45)

    twice = AffineParams(flip=True).matrix() @ AffineParams(flip=True).matrix()
    torch.testing.assert_close(twice, torch.eye(3, dtype=torch.float64))
    permutation = torch.tensor(FACE68_FLIP_PERMUTATION)
    flipped_again = flip_points[permutation] * torch.tensor([-1.0, 1.0]) + torch.tensor([1.0, 0.0])
    torch.testing.assert_close(flipped_again, plain_points)


@pytest.mark.parametrize("seed", range(6))
def test_augmentation_moves_image_and_keypoints_together(seed: int) -> None:
    """Draw a bright dot on keypoint 36, augment, find the dot where the point went."""
    keypoints = _synthetic_face(seed)
    image = torch.zeros(3, 240, 260, dtype=torch.uint8)
    dot_x, dot_y = (round(float(v)) for v in keypoints[36])
    image[:, dot_y - 1 : dot_y + 2, dot_x - 1 : dot_x + 2] = 255
    keypoints[36] = torch.tensor([float(dot_x), float(dot_y)])

    augmentation = KeypointAugmentation(scale_range=(0.8, 1.2), max_rotation_degrees=25, max_shift=0.08)
    transform = FaceCropTransform(size=80, augmentation=augmentation)
    generator = torch.Generator().manual_seed(seed)
    params = transform.choose_params(keypoints, generator)
    params = AffineParams(params.scale, params.rotation_degrees, params.shift, seed % 2 == 1)
    crop, keypoints01 = transform.apply(image, keypoints, params)

    dot_index = FACE68_FLIP_PERMUTATION[36] if params.flip else 36
    brightness = crop.sum(dim=0)
    row, col = divmod(int(brightness.argmax()), brightness.shape[1])
    expected_col, expected_row = (keypoints01[dot_index] * 80 - 0.5).tolist()
    assert abs(col - expected_col) <= 1.0 and abs(row - expected_row) <= 1.0
