"""The shared sidebar (checkpoint, device, images) and what every page starts with.

The choice persists across pages in ``st.session_state``: the sidebar widgets live in the
entry file, which runs before every page, and the resulting :class:`Selection` is stored
under ``st.session_state["selection"]``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from crmn_viz.checkpoints import CheckpointError, checkpoint_dir, list_checkpoints
from crmn_viz.devices import DEVICE_VARIABLE, DeviceError, device_override, select_device
from crmn_viz.frontends.streamlit import compute
from crmn_viz.inputs.gallery import list_gallery
from crmn_viz.inputs.selection import SelectedImage
from crmn_viz.inputs.uploads import MAX_CHECKPOINT_BYTES, MAX_IMAGES_PER_UPLOAD, UPLOAD_IMAGE_LIMITS
from crmn_viz.models.base import TracedModel
from crmn_viz.views.applicability import check_view
from crmn_viz.views.running import describe_device

SELECTION = "selection"
REPORTED_UPLOAD_ERRORS = "reported_upload_errors"
PICKED_IMAGES = "picked_images"
"""Session key: test images sent to every page from the Population or comparison pages."""
MAX_PICKED_IMAGES = 12
FOCUS_UNITS = "focus_units"
"""Session key: memory units another page asked the LSTM page to show ("show unit 37")."""
GALLERY_DEFAULTS = {"cifar10": 4, "mnist": 4, "faces68": 2}


@dataclass
class Selection:
    """The model and images chosen in the sidebar.

    Attributes:
        model: the loaded model (shared by every session: never modify it).
        key: session-independent key of the weights (for result caches).
        name: checkpoint name to show.
        card: its model card.
        images: the chosen images, in order.
        refused: one message per uploaded file that could not be used.
    """

    model: TracedModel
    key: str
    name: str
    card: dict[str, Any]
    images: list[SelectedImage] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def pngs(self) -> tuple[bytes, ...]:
        """The images as PNG bytes (cache keys)."""
        return tuple(image.png for image in self.images)

    @property
    def dataset(self) -> str | None:
        """The data set the model was trained on, when its card says."""
        return self.card.get("dataset")

    @property
    def is_keypoints(self) -> bool:
        """Whether the model predicts keypoints rather than classes."""
        return self.model.task == "keypoints"


def current() -> Selection | None:
    """The sidebar's current choice (None before a model is loaded)."""
    return st.session_state.get(SELECTION)


# --------------------------------------------------------------------------- checkpoint


def _describe_entry(entry: dict[str, Any]) -> str:
    """One line under the checkpoint picker: architecture, data set and test score."""
    parts = [entry["arch"].upper(), entry.get("dataset") or "unknown data"]
    metrics = entry.get("metrics") or {}
    if isinstance(metrics.get("test_accuracy"), (int, float)):
        parts.append(f"{100 * metrics['test_accuracy']:.1f}% test accuracy")
    elif isinstance(metrics.get("test_nme_box_given"), (int, float)):
        parts.append(f"NME {100 * metrics['test_nme_box_given']:.1f}% with the face box given")
        if isinstance(metrics.get("test_nme_detector"), (int, float)):
            parts.append(f"{100 * metrics['test_nme_detector']:.1f}% with the face found")
    elif isinstance(metrics.get("test_nme_crop"), (int, float)):
        parts.append(f"{100 * metrics['test_nme_crop']:.1f}% test NME")
    return " · ".join(parts)


def _device() -> str | None:
    """Where models go (:func:`crmn_viz.devices.select_device`), or None after saying why not."""
    try:
        return str(select_device())
    except DeviceError as err:
        st.error(f"No device to run on: {err}")
        return None


def _zoo_model(device: str) -> tuple[TracedModel, str, str] | None:
    folder = checkpoint_dir()
    entries = list_checkpoints(folder)
    if not entries:
        st.info(
            f"No checkpoints in `{folder}` yet. Upload a `.safetensors` + `.json` pair instead, "
            "or set `CRMN_VIZ_CHECKPOINT_DIR`."
        )
        return None
    by_name = {entry["name"]: entry for entry in entries}
    name = st.selectbox(
        "Checkpoint",
        list(by_name),
        key="zoo_choice",
        help=f"Trained checkpoints of the zoo in `{folder}` (safetensors weights + JSON model card).",
    )
    st.caption(_describe_entry(by_name[name]))
    path = folder / name
    try:
        model = compute.zoo_model(str(path), compute.zoo_fingerprint(path), device)
    except CheckpointError as err:
        st.error(f"Could not load `{name}`: {err}")
        return None
    return model, name, compute.model_key(model)


def _uploaded_model(device: str) -> tuple[TracedModel, str, str] | None:
    files = st.file_uploader(
        "Weights and model card",
        accept_multiple_files=True,
        type=["safetensors", "json"],
        key="ckpt_files",
        max_upload_size=MAX_CHECKPOINT_BYTES // 2**20,
        help="Both files of one checkpoint: name.safetensors and name.json. Pickled .pt files are refused.",
    )
    if not files:
        st.caption("Drop both files of a checkpoint: `name.safetensors` and `name.json`.")
        return None
    pairs = tuple((f.name, f.getvalue()) for f in files)
    digest = compute.files_digest(pairs)
    try:
        uploaded = compute.uploaded_model(digest, pairs, device)
    except CheckpointError as err:
        st.error(f"This checkpoint cannot be used: {err}")
        return None
    return uploaded.model, uploaded.name, compute.model_key(uploaded.model)


# --------------------------------------------------------------------------- images


def default_gallery_images(dataset: str | None) -> list[SelectedImage]:
    """The gallery images the sidebar starts with for a model trained on ``dataset``."""
    entries = (list_gallery(dataset) or list_gallery())[: GALLERY_DEFAULTS.get(dataset or "", 4)]
    return [SelectedImage.from_path(e.path, label=e.label, keypoints=e.keypoints) for e in entries]


def _gallery_images(dataset: str | None) -> list[SelectedImage]:
    entries = list_gallery(dataset) or list_gallery()
    if not entries:
        st.warning("The gallery is empty: run `python -m crmn_viz.inputs.make_gallery`.")
        return []
    if dataset and not list_gallery(dataset):
        st.caption(f"No gallery images for {dataset!r}: showing every gallery image.")
    by_name = {entry.name: entry for entry in entries}
    default = [image.name for image in default_gallery_images(dataset)]
    label_counts = Counter(entry.label for entry in entries)

    def describe(name: str) -> str:
        entry = by_name[name]
        return entry.label if label_counts[entry.label] == 1 else f"{entry.label} · {entry.path.stem[-5:]}"

    chosen = st.multiselect(
        "Gallery images",
        list(by_name),
        default=default,
        format_func=describe,
        key=f"gallery_{dataset or 'all'}",
        help="Real test images shipped with crmn-viz.",
    )
    return [
        SelectedImage.from_path(by_name[n].path, label=by_name[n].label, keypoints=by_name[n].keypoints)
        for n in chosen
    ]


def _uploaded_images(source: str = "upload") -> tuple[list[SelectedImage], list[str]]:
    if source == "camera":
        shot = st.camera_input("Take a photo of a face", key="camera")
        files = [shot] if shot is not None else []
    else:
        files = (
            st.file_uploader(
                "Images",
                accept_multiple_files=True,
                key="image_files",
                max_upload_size=UPLOAD_IMAGE_LIMITS.max_bytes // 2**20,
                help="PNG, JPEG, GIF, BMP, TIFF, WebP or PPM; several at once are fine.",
            )
            or []
        )
    images: list[SelectedImage] = []
    refused: list[str] = []
    if len(files) > MAX_IMAGES_PER_UPLOAD:
        refused.append(
            f"{len(files) - MAX_IMAGES_PER_UPLOAD} file(s) skipped: at most {MAX_IMAGES_PER_UPLOAD} images "
            "are analysed at once."
        )
        files = files[:MAX_IMAGES_PER_UPLOAD]
    seen: dict[str, str] = {}  # the same bytes uploaded twice are one image, and one message
    for upload in files:
        data = upload.getvalue()
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            st.caption(f"{upload.name} is the same file as {seen[digest]}: used once.")
            continue
        seen[digest] = upload.name
        decoded = compute.decode_upload(upload.name, data, source)
        if isinstance(decoded, str):
            refused.append(decoded)
        else:
            images.append(decoded)
    for message in refused:  # said here, beside the upload; a page says it once more, the first time
        st.warning(message, icon=":material/broken_image:")
    return images, refused


def render_sidebar() -> Selection | None:
    """Draw the shared sidebar and store the resulting :class:`Selection` in the session."""
    with st.sidebar:
        st.markdown("### Model")
        origin = st.segmented_control(
            "Checkpoint source",
            ["Zoo", "Upload"],
            default="Zoo",
            key="ckpt_source",
            required=True,
            label_visibility="collapsed",
        )
        device = _device()
        loaded = (
            None if device is None else _uploaded_model(device) if origin == "Upload" else _zoo_model(device)
        )
        if loaded is None:
            st.session_state.pop(SELECTION, None)
            return None
        model, name, key = loaded
        chosen_by = f" (`{DEVICE_VARIABLE}`)" if device_override() else ""
        st.caption(
            f"Runs on **{describe_device(model)}**{chosen_by} · {model.num_parameters():,} parameters",
            help=f"CUDA when PyTorch sees a GPU, else the CPU; set {DEVICE_VARIABLE} (cpu, cuda, cuda:N) "
            "before starting the app to choose.",
        )
        card = dict(getattr(model, "card", {}) or {})
        st.markdown("### Images")
        sources = ["Gallery", "Upload", "Camera"] if model.task == "keypoints" else ["Gallery", "Upload"]
        picked = list(st.session_state.get(PICKED_IMAGES, []))
        if picked:
            sources.append("Picked")
        if st.session_state.pop("image_source_request", None) in sources:
            st.session_state["image_source"] = "Picked"
        elif st.session_state.get("image_source") not in sources:
            st.session_state.pop("image_source", None)
        st.session_state.setdefault("image_source", "Gallery")
        source = st.segmented_control(
            "Image source",
            sources,
            key="image_source",
            required=True,
            label_visibility="collapsed",
        )
        refused: list[str] = []
        if source == "Upload":
            images, refused = _uploaded_images()
        elif source == "Camera":
            images, refused = _uploaded_images("camera")
        elif source == "Picked":
            images = picked
            st.caption("Test images sent here from the Population and CRMN vs ResNet pages.")
            st.button("Forget them", key="picked_clear", on_click=forget_picked_images)
        else:
            images = _gallery_images(card.get("dataset"))
        if images:
            shown = images[:12]
            st.image([image.image() for image in shown], width=52)
            if len(images) > len(shown):
                st.caption(f"and {len(images) - len(shown)} more")
    selection = Selection(model, key, name, card, images, refused)
    st.session_state[SELECTION] = selection
    return selection


# --------------------------------------------------------------------------- sending to pages


def send_to_pages(image: SelectedImage) -> None:
    """A callback: add ``image`` (e.g. a dataset exemplar) to the images every page shows, as the
    sidebar's "Picked" source (at most :data:`MAX_PICKED_IMAGES`, the newest kept)."""
    picked = [kept for kept in st.session_state.get(PICKED_IMAGES, []) if kept.digest != image.digest]
    st.session_state[PICKED_IMAGES] = [*picked, image][-MAX_PICKED_IMAGES:]
    st.session_state["image_source_request"] = "Picked"


def forget_picked_images() -> None:
    """A callback: drop the picked images and go back to the gallery."""
    st.session_state.pop(PICKED_IMAGES, None)
    st.session_state["image_source"] = "Gallery"


def focus_units(units: list[int]) -> None:
    """A callback: ask the LSTM memory page to show these units (it picks them on its next run)."""
    st.session_state[FOCUS_UNITS] = [int(unit) for unit in units]


# --------------------------------------------------------------------------- pages


def _use_checkpoint(name: str) -> None:
    """Button callback: pick a zoo checkpoint in the sidebar (runs before the next script run)."""
    st.session_state["ckpt_source"] = "Zoo"
    st.session_state["zoo_choice"] = name


def page_start(view: str, title: str, intro: str, *, needs_images: bool = True) -> Selection:
    """Title a page and return the selection, or explain kindly what is missing and stop.

    Args:
        view: the page key (see :data:`crmn_viz.views.applicability.VIEWS`).
        title: page title.
        intro: one or two sentences on what the page shows.
        needs_images: stop with a hint when no image is chosen.
    """
    st.title(title)
    st.caption(intro)
    selection = current()
    if selection is None:
        st.info(
            "Choose a checkpoint in the sidebar (from the zoo, or upload a `.safetensors` + `.json` pair)."
        )
        st.stop()
    verdict = check_view(view, selection.model)
    if not verdict.applies:
        st.info(verdict.message, icon=":material/info:")
        buttons = st.container(horizontal=True)
        for name in verdict.suggestions[:3]:
            buttons.button(f"Use {name}", key=f"use_{name}", on_click=_use_checkpoint, args=(name,))
        st.stop()
    reported = st.session_state.setdefault(REPORTED_UPLOAD_ERRORS, set())
    for message in selection.refused:  # once, on the page in view when the upload came in
        if message not in reported:
            st.error(message, icon=":material/broken_image:")
            reported.add(message)
    if needs_images and not selection.images:
        st.info("Choose one or more images in the sidebar: from the gallery, an upload or the camera.")
        st.stop()
    return selection


def image_picker(
    selection: Selection, label: str = "Image", key: str = "image_index", *, columns: bool = False
) -> int:
    """A select box over the chosen images (display only); returns the index.

    Args:
        selection: the current selection.
        label: widget label.
        key: widget key (shared by the pages, so the choice follows the user around).
        columns: draw it in the left third of the page instead of full width.
    """
    images = selection.images
    if len(images) == 1:
        return 0
    # Options name the images themselves (position and digest), so when the chosen images change
    # the widget cannot keep a stale label. A newly uploaded image is selected first; otherwise the
    # image chosen last, on any page, stays chosen (Streamlit forgets a widget's state on a page
    # that does not draw it, so the choice is kept under a key of its own).
    digests = [image.digest for image in images]
    options = [f"{k}:{digest}" for k, digest in enumerate(digests)]
    labels = {option: f"{k + 1}. {image.name}" for k, (option, image) in enumerate(zip(options, images))}
    known = st.session_state.setdefault(f"{key}_known", set())
    uploaded = [
        k for k, image in enumerate(images) if image.digest not in known and image.source != "gallery"
    ]
    last_choice = st.session_state.get(f"{key}_chosen")
    if uploaded and known:
        default = uploaded[-1]
    elif last_choice in digests:
        default = digests.index(last_choice)
    else:
        default = 0
    known.update(digests)
    where = st.columns([1, 2])[0] if columns else st.container()
    choice = where.selectbox(label, options, index=default, format_func=labels.__getitem__, key=key)
    index = int(str(choice or options[default]).split(":", 1)[0])
    st.session_state[f"{key}_chosen"] = digests[index]
    return index
