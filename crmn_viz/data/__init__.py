"""Datasets, augmentations and loaders for CRMN / ReNet / RiR models.

Data root: an explicit ``data_dir`` argument, else ``$CRMN_VIZ_DATA_DIR``, else ``./data``.
"""

from crmn_viz.data.builders import build_dataset, classification_transform
from crmn_viz.data.data_root import (
    DATA_DIR_ENV_VAR,
    DatasetNotFoundError,
    resolve_data_dir,
)
from crmn_viz.data.face_geometry import (
    FACE68_FLIP_PERMUTATION,
    FACE68_MIRROR_PAIRS,
    FaceBox,
    apply_affine,
    crop_and_resize,
    crop_to_image_coords,
    face_box_from_keypoints,
    image_to_crop_coords,
    warp_affine,
)
from crmn_viz.data.faces import (
    AffineParams,
    FaceCropTransform,
    Faces68Dataset,
    KeypointAugmentation,
    read_keypoint_csv,
)
from crmn_viz.data.in_memory import InMemoryImageDataset
from crmn_viz.data.info import DatasetInfo, dataset_info, list_datasets
from crmn_viz.data.jpeg_archive import (
    ArchiveImageFolder,
    DirectoryMemberReader,
    ZipMemberReader,
)
from crmn_viz.data.loaders import make_loader, seed_worker, set_loader_epoch
from crmn_viz.data.statistics import compute_channel_stats

__all__ = [
    "DATA_DIR_ENV_VAR",
    "FACE68_FLIP_PERMUTATION",
    "FACE68_MIRROR_PAIRS",
    "AffineParams",
    "ArchiveImageFolder",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DirectoryMemberReader",
    "FaceBox",
    "FaceCropTransform",
    "Faces68Dataset",
    "InMemoryImageDataset",
    "KeypointAugmentation",
    "ZipMemberReader",
    "apply_affine",
    "build_dataset",
    "classification_transform",
    "compute_channel_stats",
    "crop_and_resize",
    "crop_to_image_coords",
    "dataset_info",
    "face_box_from_keypoints",
    "image_to_crop_coords",
    "list_datasets",
    "make_loader",
    "read_keypoint_csv",
    "resolve_data_dir",
    "seed_worker",
    "set_loader_epoch",
    "warp_affine",
]
