"""Glue between the core library and the front ends (Streamlit app, Gradio demo, CLI).

Nothing here draws or computes on its own: it indexes the shipped gallery, turns uploads
into images and models safely, reshapes analysis results for the figure builders, and
writes figures to downloadable files. Front ends call these functions; they never touch
torch or build figures themselves.

* :mod:`~crmn_viz.app_support.gallery`: :func:`list_gallery` over ``crmn_viz/gallery``
  (rebuilt by :mod:`~crmn_viz.app_support.make_gallery`).
* :mod:`~crmn_viz.app_support.selection`: :class:`SelectedImage`, an image as canonical PNG
  bytes (the cache key of every result).
* :mod:`~crmn_viz.app_support.uploads`: uploaded images and ``.safetensors`` + ``.json``
  checkpoint pairs (private temporary folder, size limits).
* :mod:`~crmn_viz.app_support.inference`,
  :mod:`~crmn_viz.app_support.architecture`, :mod:`~crmn_viz.app_support.summaries`,
  :mod:`~crmn_viz.app_support.datasets`: small adapters over :mod:`crmn_viz.analysis`.
* :mod:`~crmn_viz.app_support.applicability`: which view suits which model.
* :mod:`~crmn_viz.app_support.figure_files`: screen copies, downloads and export bundles.
"""

from crmn_viz.app_support.applicability import VIEWS, Applicability, check_view, suggest_checkpoints
from crmn_viz.app_support.figure_files import (
    DownloadFile,
    FigureItem,
    export_bundle,
    figure_data_file,
    figure_image_file,
    for_screen,
)
from crmn_viz.app_support.gallery import GALLERY_DIR, GalleryEntry, gallery_datasets, list_gallery
from crmn_viz.app_support.selection import SelectedImage
from crmn_viz.app_support.uploads import (
    ImageUploadResult,
    UploadedCheckpoint,
    decode_image_uploads,
    load_checkpoint_upload,
)

__all__ = [
    "GALLERY_DIR",
    "VIEWS",
    "Applicability",
    "DownloadFile",
    "FigureItem",
    "GalleryEntry",
    "ImageUploadResult",
    "SelectedImage",
    "UploadedCheckpoint",
    "check_view",
    "decode_image_uploads",
    "export_bundle",
    "figure_data_file",
    "figure_image_file",
    "for_screen",
    "gallery_datasets",
    "list_gallery",
    "load_checkpoint_upload",
    "suggest_checkpoints",
]
