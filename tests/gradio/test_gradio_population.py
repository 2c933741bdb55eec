"""The Gradio demo's population, comparison, blocks and sweep-gate tabs on a tiny zoo and a small
fake CIFAR-10.

Expectations come from the images read with ``zipfile`` and PIL and from ``run_with_trace`` (or the
models' logits), computed here by hand.
"""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

import crmn_viz
from crmn_viz.frontends import gradio_app
from tests.population_data import (
    CIFAR10_CLASSES,
    fake_test_images,
    write_fake_cifar10,
    write_tiny_zoo,
    write_training_log,
)

IMAGES = 30  # every test image of the fake archive (3 per class)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The tiny zoo, the fake data, training logs of the pair and a private population cache."""
    root = tmp_path_factory.mktemp("population-demo")
    folder = write_tiny_zoo(root / "zoo")
    data = write_fake_cifar10(root / "data")
    for name in ("tiny-crmn", "tiny-resnet"):
        write_training_log(root / "logs", name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CRMN_VIZ_CHECKPOINT_DIR", str(folder))
        patch.setenv("CRMN_VIZ_DATA_DIR", str(data))
        patch.setenv("CRMN_VIZ_CACHE_DIR", str(root / "cache"))
        patch.setenv("CRMN_VIZ_TRAINING_LOGS", str(root / "logs"))
        gradio_app.cached_model.cache_clear()
        gradio_app._quantities.cache_clear()
        yield folder, data
        gradio_app.cached_model.cache_clear()
        gradio_app._quantities.cache_clear()


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("image") / "noise.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return str(path)


def hidden_at(zoo_folder: Path, data: Path, step: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(test image names, hidden state ``[N, H]`` at ``step`` from run_with_trace, labels)."""
    names, images, labels = fake_test_images(data, IMAGES)
    model = crmn_viz.load(zoo_folder / "tiny-crmn.safetensors", device="cpu").eval()
    with torch.no_grad():
        _, trace = model.run_with_trace(images, names=["lstm.hidden"])
    return names, trace["lstm.hidden"][:, step].double().numpy(), labels


def d_prime(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d' of every unit by hand: (preferred class mean - mean of the other class means) / pooled
    within-class SD, s^2 = sum over classes and images of (x - class mean)^2 / (N - C)."""
    classes = np.unique(labels)
    means = np.stack([values[labels == c].mean(axis=0) for c in classes])  # [C, U]
    within = sum(((values[labels == c] - means[i]) ** 2).sum(axis=0) for i, c in enumerate(classes))
    pooled = np.sqrt(within / (len(values) - len(classes)))
    preferred = means.argmax(axis=0)
    others = (means.sum(axis=0) - means.max(axis=0)) / (len(classes) - 1)
    return (means[preferred, np.arange(values.shape[1])] - others) / pooled


def test_population_choices_list_the_quantities_and_steps_from_one(zoo):
    assert "tiny-crmn" in gradio_app.population_names() and "tiny-faces" in gradio_app.population_names()
    quantities, steps = gradio_app.population_choices_handler("tiny-crmn")
    assert ("hidden state h", "hidden") in quantities["choices"] and quantities["value"] == "hidden"
    assert steps["choices"] == [("step 1", 0), ("step 2", 1), ("step 3", 2)] and steps["value"] == 2
    quantities, steps = gradio_app.population_choices_handler("tiny-resnet")
    assert quantities["value"] == "block" and len(steps["choices"]) == 3


def test_selectivity_handler_ranks_the_units_as_a_hand_computed_d_prime(zoo):
    zoo_folder, data = zoo
    figure, text = gradio_app.selectivity_handler("tiny-crmn", IMAGES, "hidden", 2, "selectivity", 200)
    assert figure.data and figure.layout.width >= gradio_app.PLOT_WIDTH
    assert "step 3" in text  # the caption counts from 1
    _, hidden, labels = hidden_at(zoo_folder, data, 2)
    expected = d_prime(hidden, labels)
    rows = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()]
    units = [int(line.split("|")[1]) for line in rows]
    assert units == [int(u) for u in np.argsort(-expected, kind="stable")]
    shown = [float(line.split("|")[3].split()[0]) for line in rows]
    np.testing.assert_allclose(shown, np.sort(expected)[::-1], atol=0.006)  # printed with 2 decimals


def test_exemplars_handler_shows_the_traced_argsort_with_name_and_value(zoo):
    zoo_folder, data = zoo
    names, hidden, _ = hidden_at(zoo_folder, data, 1)
    for end, sign in (("highest", -1.0), ("lowest", 1.0)):
        gallery = gradio_app.exemplars_handler("tiny-crmn", IMAGES, "hidden", 1, 4, 5, end)
        order = np.lexsort((np.arange(IMAGES), sign * hidden[:, 4]))[:5]
        assert [caption.split(" = ")[0] for _, caption in gallery] == [names[i] for i in order]
        values = [float(caption.split(" = ")[1]) for _, caption in gallery]
        np.testing.assert_allclose(values, hidden[order, 4], rtol=1e-3, atol=1e-4)  # shown with 4 digits
    # each picture is the member's own pixels
    with zipfile.ZipFile(data / "cifar10-jpeg.zip") as archive:
        picture, caption = gallery[0]
        member = np.asarray(Image.open(io.BytesIO(archive.read(caption.split(" = ")[0]))).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(picture.convert("RGB")), member)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("tiny-crmn", IMAGES, "hiden", 0), "Choose one of"),
        (("tiny-crmn", IMAGES, "hidden", 3), "steps 0..2"),
        (("tiny-crmn", 0, "hidden", 0), "between 1 and"),
        (("tiny-faces", IMAGES, "hidden", 0), "no classes"),
        (("/etc/passwd", IMAGES, "hidden", 0), "not a checkpoint"),
    ],
)
def test_selectivity_handler_refuses_bad_input_with_a_message(zoo, arguments, message):
    with pytest.raises(gr.Error, match=message):
        gradio_app.selectivity_handler(*arguments)


def test_exemplars_handler_refuses_a_unit_out_of_range(zoo):
    with pytest.raises(gr.Error, match=r"unit must be in 0\.\.5"):
        gradio_app.exemplars_handler("tiny-crmn", IMAGES, "hidden", 0, 6, 3, "highest")


def test_a_missing_data_set_is_a_message_without_server_folders(zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("CRMN_VIZ_DATA_DIR", str(tmp_path / "nothing-here"))
    for call in (
        lambda: gradio_app.selectivity_handler("tiny-crmn", 7, "hidden", 0),
        lambda: gradio_app.exemplars_handler("tiny-crmn", 7, "hidden", 0, 0, 3, "highest"),
        lambda: gradio_app.compare_handler("tiny-crmn vs tiny-resnet", 7),
    ):
        with pytest.raises(gr.Error) as info:
            call()
        assert "cifar10 data set is not on this server" in info.value.message
        assert str(tmp_path) not in info.value.message


def test_compare_handler_counts_accuracies_and_disagreements_by_hand(zoo):
    zoo_folder, data = zoo
    assert gradio_app.pair_choices()[0][1] == "tiny-crmn vs tiny-resnet"
    made = gradio_app.compare_handler("tiny-crmn vs tiny-resnet", IMAGES)
    text, figures, picker, first, curves, rows = made
    _, images, labels = fake_test_images(data, IMAGES)
    predicted = {}
    for name in ("tiny-crmn", "tiny-resnet"):
        model = crmn_viz.load(zoo_folder / f"{name}.safetensors", device="cpu").eval()
        with torch.no_grad():
            predicted[name] = model(images).argmax(dim=1).numpy()
    accuracy_b = (predicted["tiny-resnet"] == labels).mean()
    assert f"| tiny-resnet | {100 * accuracy_b:.1f}% |" in text
    assert f"{IMAGES} cifar10 images" in text
    assert {"per_class_accuracy", "agreement_matrix", "correctness", "stepwise_accuracy"} == set(figures)
    assert picker["choices"] == list(figures) and first is figures[picker["value"]]
    assert curves is not None and curves.data  # both logs found
    differ = int((predicted["tiny-crmn"] != predicted["tiny-resnet"]).sum())
    assert len(rows) == min(differ, 50)
    names = fake_test_images(data, IMAGES)[0]
    for row in rows:
        index = names.index(row[0])
        assert row[1] == CIFAR10_CLASSES[labels[index]]
        assert row[2] == CIFAR10_CLASSES[predicted["tiny-crmn"][index]]
        assert row[4] == CIFAR10_CLASSES[predicted["tiny-resnet"][index]]
    with pytest.raises(gr.Error, match="zoo's pairs"):
        gradio_app.compare_handler("tiny-crmn vs tiny-renet", IMAGES)


def test_blocks_and_sweep_gate_handlers(zoo, image_file):
    figure = gradio_app.blocks_handler(image_file, "tiny-resnet")
    assert len(figure.data) >= 3 and figure.layout.width >= gradio_app.PLOT_WIDTH
    assert gradio_app.sweep_gates_handler(image_file, "tiny-renet", 0, "reset_gate").data
    with pytest.raises(gr.Error, match="ReNet"):
        gradio_app.sweep_gates_handler(image_file, "tiny-crmn", 0, "reset_gate")
    with pytest.raises(gr.Error, match="update_gate"):
        gradio_app.sweep_gates_handler(image_file, "tiny-renet", 0, "forget_gate")
    with pytest.raises(gr.Error, match="upload an image"):
        gradio_app.blocks_handler(None, "tiny-resnet")


def run_api(demo: gr.Blocks, api_name: str, inputs: list) -> dict:  # type: ignore[type-arg]
    from gradio.state_holder import SessionState

    fn = next(fn for fn in demo.fns.values() if fn.api_name == api_name)
    return asyncio.run(demo.process_api(fn, inputs, state=SessionState(demo)))


def test_the_demo_registers_the_new_tabs_on_named_apis(zoo):
    demo = gradio_app.build_demo()
    names = {fn.api_name for fn in demo.fns.values()}
    new = {"selectivity", "exemplars", "compare", "blocks", "sweep_gates", "population_quantities"}
    assert new | {"classify", "gates", "sweeps", "all_figures"} <= names
    gallery = run_api(demo, "exemplars", ["tiny-crmn", IMAGES, "hidden", 2, 0, 3, "highest"])["data"][0]
    assert len(gallery) == 3 and all(item["caption"].startswith("test/") for item in gallery)
    plot, text = run_api(demo, "selectivity", ["tiny-crmn", IMAGES, "hidden", 2, "cluster"])["data"]
    assert plot is not None and "Most selective" in text
    # another checkpoint's quantity, not among the first checkpoint's choices: the handler checks it
    gallery = run_api(demo, "exemplars", ["tiny-resnet", IMAGES, "block", 1, 0, 2, "lowest"])["data"][0]
    assert len(gallery) == 2


NEW_NETWORK_HANDLERS = {
    "selectivity": "selectivity_handler",
    "selectivity_files": "selectivity_files_handler",
    "exemplars": "exemplars_handler",
    "population_quantities": "population_choices_handler",
    "population_steps": "population_steps_handler",
    "compare": "compare_handler",
    "blocks": "blocks_handler",
    "blocks_files": "blocks_files_handler",
    "sweep_gates": "sweep_gates_handler",
}


def test_with_spaces_the_new_network_handlers_run_under_spaces_gpu(zoo, monkeypatch):
    from tests.test_devices import fake_spaces

    spaces = fake_spaces(monkeypatch)
    demo = gradio_app.build_demo()
    wrapped = [name for name, _ in spaces.wrapped]
    assert len(wrapped) == len(set(wrapped))  # each handler wrapped once
    for api_name, handler in NEW_NETWORK_HANDLERS.items():
        registered = next(fn for fn in demo.fns.values() if fn.api_name == api_name).fn
        assert registered.__wrapped__ is getattr(gradio_app, handler), api_name
