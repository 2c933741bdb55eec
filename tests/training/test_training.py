"""Training CLI: a one-batch run, resume after interruption, torchrun with two processes."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crmn_viz import load
from crmn_viz.frontends.cli import main as cli_main
from crmn_viz.frontends.cli import metrics_agreement
from crmn_viz.training import InMemoryBatches, _loss, load_recipe, train

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("CRMN_VIZ_DATA_DIR", REPO.parent / "shared" / "data"))
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist").exists(), reason="MNIST copy not found")

RECIPE = """
name = "tiny-mnist"
arch = "crmn"
dataset = "mnist"
model = {{ depth = 8, width = 4, hidden_size = 6 }}
epochs = {epochs}
batch_size = 16
lr = 0.05
max_train_batches = 2
max_eval_batches = 2
half_storage = false
"""


def write_recipe(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(epochs=epochs))
    return path


@needs_mnist
def test_one_batch_training_run_writes_checkpoint_card_and_metrics(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, 1))
    metrics = train(recipe, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    model = load(tmp_path / "ck" / "tiny-mnist", device="cpu")
    assert model.card["dataset"] == "mnist" and model.card["class_names"][0] == "0"
    assert model.card["metrics"]["test_accuracy"] == metrics["test_accuracy"]
    assert model.card["training"]["epochs"] == 1 and model.card["training"]["wall_time_s"] > 0
    lines = (tmp_path / "runs" / "tiny-mnist" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["epoch"] == 1


@needs_mnist
def test_resume_continues_from_the_last_epoch(tmp_path):
    recipe = load_recipe(write_recipe(tmp_path, 2))
    stopped = train(
        recipe, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False, stop_after_epoch=1
    )  # "interrupted" after the first of two epochs
    assert stopped == {"stopped_at_epoch": 1} and not (tmp_path / "ck").exists()
    state = torch.load(tmp_path / "runs" / "tiny-mnist" / "last_state.pt", weights_only=True)
    assert state["epoch"] == 1
    train(recipe, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    epochs = [
        json.loads(line)["epoch"]
        for line in (tmp_path / "runs" / "tiny-mnist" / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2]  # epoch 1 was not repeated


@needs_mnist
def test_eval_reproduces_the_card_of_a_half_precision_checkpoint(tmp_path, capsys):
    """The card's metrics are measured on the float16-rounded weights that are shipped, so
    ``crmn-viz eval`` on the file reproduces them and exits 0."""
    path = write_recipe(tmp_path, 1)
    path.write_text(path.read_text().replace("half_storage = false", "half_storage = true"))
    train(load_recipe(path), str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    checkpoint = str(tmp_path / "ck" / "tiny-mnist")
    code = cli_main(
        ["eval", checkpoint, "--data-dir", str(SHARED_DATA), "--max-batches", "2", "--device", "cpu"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["agrees_with_card"] == {"test_accuracy": True, "test_num_images": True}


@pytest.mark.skipif(not (SHARED_DATA / "faces68").exists(), reason="faces68 copy not found")
def test_keypoint_card_photo_metrics_are_reproduced_from_the_shipped_file(tmp_path):
    """The card's photo-level NME (through predict_keypoints) must be what a user gets from the
    saved checkpoint: same weights and the same input normalisation as at training time."""
    from crmn_viz.analysis.keypoint_evaluation import evaluate_keypoints_on_photos

    path = tmp_path / "faces.toml"
    path.write_text(
        'name = "tiny-faces"\narch = "crmn"\ndataset = "faces68"\nepochs = 1\nbatch_size = 8\n'
        'max_train_batches = 1\nmax_eval_batches = 1\noptimizer = "adam"\nlr = 0.01\n'
        'model = { depth = 8, width = 4, hidden_size = 6, pool = 4, task = "keypoints" }\n'
    )
    metrics = train(load_recipe(path), str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    model = load(tmp_path / "ck" / "tiny-faces", device="cpu")
    photos = metrics["test_num_photos"]
    again = evaluate_keypoints_on_photos(model, SHARED_DATA, "test", max_photos=photos, progress=False)
    assert again["nme"] == pytest.approx(metrics["test_nme_box_given"], rel=1e-9)
    assert model.card["metrics"]["test_nme_box_given"] == metrics["test_nme_box_given"]


@needs_mnist
def test_amp_runs_in_float32_with_a_warning_on_a_cpu_without_bfloat16(monkeypatch):
    import crmn_viz.benchmarks as benchmarks
    from crmn_viz.training import autocast_pays

    monkeypatch.setattr(benchmarks, "cpu_has_bfloat16_arithmetic", lambda sets: False)
    with pytest.warns(UserWarning, match="no bfloat16 arithmetic"):
        assert autocast_pays(True, torch.device("cpu")) is False
    assert (
        autocast_pays(True, torch.device("cuda")) is True
        and autocast_pays(False, torch.device("cpu")) is False
    )
    monkeypatch.setattr(benchmarks, "cpu_has_bfloat16_arithmetic", lambda sets: True)
    assert autocast_pays(True, torch.device("cpu")) is True


def test_bfloat16_channels_last_training_steps_round_and_still_ship_float32(tmp_path, capsys, monkeypatch):
    """``amp`` runs the training step in bfloat16 autocast (on a CPU that has bfloat16 arithmetic:
    forced here, so the check runs on any CPU) and ``channels_last`` changes only the memory
    layout: the first epoch's loss moves by a bfloat16 rounding (not zero, well under 5%), and
    the shipped checkpoint is an ordinary float32 model whose card ``crmn-viz eval`` reproduces."""
    import crmn_viz.benchmarks as benchmarks

    monkeypatch.setattr(benchmarks, "cpu_has_bfloat16_arithmetic", lambda sets: True)
    losses = {}
    for options in ("", "amp = true\nchannels_last = true\n"):
        path = write_recipe(tmp_path, 1)
        path.write_text(path.read_text() + options)
        runs = tmp_path / ("mixed" if options else "plain")
        train(load_recipe(path), str(SHARED_DATA), runs, runs / "ck", progress=False)
        losses[bool(options)] = json.loads((runs / "tiny-mnist" / "metrics.jsonl").read_text())["train_loss"]
    assert 0 < abs(losses[True] - losses[False]) < 0.05 * losses[False]
    model = load(tmp_path / "mixed" / "ck" / "tiny-mnist", device="cpu")
    # float32 weights, in the layout load() gives every model of this kind (channels_last for convolutions)
    layout = model.preferred_memory_format
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(p.is_contiguous(memory_format=layout) for p in model.parameters() if p.dim() == 4)
    assert model.card["training"]["recipe"]["amp"] is True
    code = cli_main(
        [
            "eval",
            str(tmp_path / "mixed" / "ck" / "tiny-mnist"),
            "--data-dir",
            str(SHARED_DATA),
            "--max-batches",
            "2",
            "--device",
            "cpu",
        ]
    )
    assert code == 0 and all(json.loads(capsys.readouterr().out)["agrees_with_card"].values())


def test_metrics_agreement_flags_a_card_that_does_not_reproduce():
    card = {"test_accuracy": 0.9, "test_num_images": 10000, "note": "x"}
    assert metrics_agreement({"test_accuracy": 0.90004, "test_num_images": 10000}, card) == {
        "test_accuracy": True,
        "test_num_images": True,
    }
    assert metrics_agreement({"test_accuracy": 0.89, "test_num_images": 9999}, card) == {
        "test_accuracy": False,
        "test_num_images": False,
    }


def test_unknown_recipe_keys_are_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\narch = "crmn"\ndataset = "mnist"\nepoch = 3\n')
    with pytest.raises(ValueError, match="unknown recipe keys \\['epoch'\\]"):
        load_recipe(path)


def test_keypoint_losses_are_the_mean_absolute_and_squared_coordinate_errors(tmp_path):
    output = torch.tensor([[[0.2, 0.4], [0.9, 0.1]]])
    target = torch.tensor([[[0.5, 0.4], [0.5, 0.3]]])  # per-coordinate errors 0.3, 0, 0.4, 0.2
    for kind, expected in (("l1", 0.9 / 4), ("mse", (0.09 + 0.16 + 0.04) / 4)):
        path = tmp_path / f"{kind}.toml"
        path.write_text(
            f'name = "k"\narch = "crmn"\ndataset = "faces68"\nkeypoint_loss = "{kind}"\n'
            'model = { task = "keypoints" }\n'
        )
        assert _loss(load_recipe(path), output, target).item() == pytest.approx(expected)
    path = tmp_path / "bad.toml"
    path.write_text('name = "k"\narch = "crmn"\ndataset = "faces68"\nkeypoint_loss = "huber"\n')
    with pytest.raises(ValueError, match="keypoint_loss must be"):
        load_recipe(path)


def test_batch_augmentation_is_a_shifted_crop_of_the_padded_image():
    images = torch.randint(0, 256, (64, 8, 8, 3), dtype=torch.uint8)
    data = InMemoryBatches(images, torch.zeros(64, dtype=torch.long), (0, 0, 0), (1, 1, 1), pad=2, flip=False)
    x = data.normalise(data.images)
    out = data.augment(x, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(64):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_every_shipped_recipe_parses():
    for path in sorted((REPO / "configs").glob("*.toml")):
        recipe = load_recipe(path)
        assert recipe.name == path.stem


@needs_mnist
def test_torchrun_two_cpu_processes_with_gloo(tmp_path):
    recipe = write_recipe(tmp_path, 1)
    env = {**os.environ, "CRMN_VIZ_DATA_DIR": str(SHARED_DATA), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29571",
            "-m",
            "crmn_viz.frontends.cli",
            "train",
            str(recipe),
            "--out",
            str(tmp_path / "runs"),
            "--checkpoint-dir",
            str(tmp_path / "ck"),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    card = json.loads((tmp_path / "ck" / "tiny-mnist.json").read_text())
    assert card["training"]["processes"] == 2


def test_round_robin_schedule_decays_resnet_then_lstm_then_head(tmp_path):
    """CRMN 2017 section 4: one component at a time, ResNet -> LSTM -> sigmoid layer, with
    factors 0.1, 0.5, 0.2 for successive rounds (our documented reading)."""
    from crmn_viz import create_model
    from crmn_viz.training import _make_optimizer, _make_schedule

    path = tmp_path / "rr.toml"
    path.write_text(
        'name = "rr"\narch = "crmn"\ndataset = "cifar10"\nschedule = "round_robin"\nepochs = 1\n'
        "lr = 1.0\nmilestones = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]\n"
        "model = { depth = 8, width = 4, hidden_size = 6 }\n"
    )
    recipe = load_recipe(path)
    model = create_model("crmn", depth=8, width=4, hidden_size=6)
    optimizer = _make_optimizer(recipe, model)
    schedule = _make_schedule(recipe, optimizer, steps_per_epoch=99)  # 100 steps: shifts at 10, 20 ...
    components = [group["component"] for group in optimizer.param_groups]
    assert set(components) == {"resnet", "lstm", "head"}
    lstm_params = {id(p) for p in model.lstm.parameters()}
    for group in optimizer.param_groups:
        assert all((id(p) in lstm_params) == (group["component"] == "lstm") for p in group["params"])
    expected = {  # after this many steps: learning rate of (resnet, lstm, head)
        5: (1.0, 1.0, 1.0),
        10: (0.1, 1.0, 1.0),
        20: (0.1, 0.1, 1.0),
        30: (0.1, 0.1, 0.1),
        40: (0.05, 0.1, 0.1),
        60: (0.05, 0.05, 0.05),
    }
    for step in range(61):
        if step in expected:
            rates = {g["component"]: g["lr"] for g in optimizer.param_groups}
            got = tuple(rates[c] for c in ("resnet", "lstm", "head"))
            assert got == pytest.approx(expected[step]), step
        optimizer.step()
        schedule.step()
    path.write_text(path.read_text().replace('arch = "crmn"', 'arch = "resnet"'))
    with pytest.raises(ValueError, match="arch must be crmn"):
        load_recipe(path)


def _learning_rates(optimizer: torch.optim.Optimizer, schedule, steps: int) -> list[tuple[float, float]]:
    """(learning rate, momentum) used by each of the next ``steps`` optimiser steps."""
    rates = []
    for _ in range(steps):
        rates.append((optimizer.param_groups[0]["lr"], optimizer.param_groups[0]["momentum"]))
        schedule.step()
    return rates


def _sgd() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=0.1, momentum=0.9)


def _torch_one_cycle(peak: float, steps: int) -> tuple[torch.optim.Optimizer, object]:
    """torch's own OneCycleLR as the recipes configure it, over ``steps`` training steps."""
    optimizer = _sgd()
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=peak, total_steps=steps + 1, pct_start=0.25, anneal_strategy="linear"
    )
    return optimizer, schedule


def _restart_recipe(tmp_path: Path, restarts: str, schedule: str = "onecycle") -> Path:
    path = tmp_path / "restarts.toml"
    path.write_text(
        f'name = "r"\narch = "resnet"\ndataset = "cifar10"\nepochs = 8\nlr = 0.2\n'
        f'schedule = "{schedule}"\nrestarts = {restarts}\n'
    )
    return path


def test_one_cycle_with_restarts_repeats_torch_one_cycle_per_cycle(tmp_path):
    """Without restarts the schedule is torch's OneCycleLR over the run, step for step; a warm
    restart at epoch 5 leaves epochs 1-5 unchanged and then runs a fresh OneCycleLR over the
    remaining 3 epochs with the restart's peak (Loshchilov & Hutter's warm restart)."""
    from crmn_viz.training import _make_schedule

    steps_per_epoch = 7
    single = load_recipe(_restart_recipe(tmp_path, "[]"))
    total = 8 * steps_per_epoch
    expected_single = _learning_rates(*_torch_one_cycle(0.2, total), total)
    optimizer = _sgd()
    assert (
        _learning_rates(optimizer, _make_schedule(single, optimizer, steps_per_epoch), total)
        == expected_single
    )

    restarted = load_recipe(_restart_recipe(tmp_path, "[{ at_epoch = 5, lr = 0.05 }]"))
    optimizer = _sgd()
    got = _learning_rates(optimizer, _make_schedule(restarted, optimizer, steps_per_epoch), total)
    first, second = 5 * steps_per_epoch, 3 * steps_per_epoch
    expected = _learning_rates(*_torch_one_cycle(0.2, first), first)
    expected += _learning_rates(*_torch_one_cycle(0.05, second), second)
    assert got == expected
    restart_step = 5 * steps_per_epoch
    first_cycle = [lr for lr, _ in got[:restart_step]]
    assert first_cycle[-1] == min(first_cycle) < 0.2 / 25  # the first cycle annealed to its lowest ...
    assert got[restart_step][0] == pytest.approx(0.05 / 25)  # ... the second starts at its peak / 25
    assert max(lr for lr, _ in got[restart_step:]) <= 0.05 and got[restart_step][1] == pytest.approx(0.95)


@pytest.mark.parametrize("stop_at", [1, 34, 35, 36, 50])
def test_one_cycle_with_restarts_resumes_at_any_step(tmp_path, stop_at):
    """A resumed run continues with the same learning rates as an uninterrupted one, including
    at the restart (step 35) and from the plain OneCycleLR state saved before restarts existed."""
    from crmn_viz.training import _make_schedule

    recipe = load_recipe(_restart_recipe(tmp_path, "[{ at_epoch = 5, lr = 0.05 }]"))
    optimizer = _sgd()
    schedule = _make_schedule(recipe, optimizer, 7)
    uninterrupted = _learning_rates(optimizer, schedule, 56)
    optimizer = _sgd()
    schedule = _make_schedule(recipe, optimizer, 7)
    _learning_rates(optimizer, schedule, stop_at)
    resumed_optimizer = _sgd()
    resumed = _make_schedule(recipe, resumed_optimizer, 7)
    resumed.load_state_dict(schedule.state_dict())
    assert _learning_rates(resumed_optimizer, resumed, 56 - stop_at) == uninterrupted[stop_at:]
    if stop_at <= 35:  # a run saved by a plain OneCycleLR over the first cycle's 5 epochs
        legacy_optimizer, legacy = _torch_one_cycle(0.2, 35)
        _learning_rates(legacy_optimizer, legacy, stop_at)
        resumed_optimizer = _sgd()
        resumed = _make_schedule(recipe, resumed_optimizer, 7)
        resumed.load_state_dict(legacy.state_dict())
        assert _learning_rates(resumed_optimizer, resumed, 56 - stop_at) == uninterrupted[stop_at:]


@pytest.mark.parametrize(
    ("restarts", "schedule", "message"),
    [
        ("[{ at_epoch = 5, lr = 0.05 }]", "step", "restarts need schedule = 'onecycle'"),
        ("[{ at_epoch = 8, lr = 0.05 }]", "onecycle", "must increase inside"),
        ("[{ at_epoch = 0, lr = 0.05 }]", "onecycle", "must increase inside"),
        ("[{ at_epoch = 5, lr = 0.05 }, { at_epoch = 5, lr = 0.01 }]", "onecycle", "must increase inside"),
        ("[{ at_epoch = 5, lr = -1.0 }]", "onecycle", "must be positive"),
        ("[{ at_epoch = 5, peak = 0.05 }]", "onecycle", "each restart is"),
        ("[5]", "onecycle", "each restart is"),
    ],
)
def test_invalid_restarts_are_refused_with_a_reason(tmp_path, restarts, schedule, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(_restart_recipe(tmp_path, restarts, schedule))


@pytest.mark.parametrize(
    ("crmn_name", "resnet_name"),
    [
        ("crmn-cifar10", "resnet-cifar10"),
        ("crmn32-cifar10", "resnet32-cifar10"),
        ("crmn-cifar10-swa", "resnet-cifar10-swa"),
    ],
)
def test_zoo_crmn_and_its_resnet_baseline_share_one_recipe(crmn_name, resnet_name):
    """The CRMN and its ResNet baseline must be trained identically (issue: the same recipe)."""
    crmn = load_recipe(REPO / "configs" / f"{crmn_name}.toml")
    resnet = load_recipe(REPO / "configs" / f"{resnet_name}.toml")
    assert (crmn.arch, resnet.arch) == ("crmn", "resnet")
    shared = dataclasses.asdict(crmn).keys() - {"name", "arch", "model", "init_from"}
    assert {field for field in shared if getattr(crmn, field) != getattr(resnet, field)} == set()
    assert crmn.model["depth"] == resnet.model["depth"] and crmn.model["width"] == resnet.model["width"]
    if crmn.init_from:  # continuations start from the pair's own parents
        assert (crmn.init_from, resnet.init_from) == (
            crmn_name.removesuffix("-swa"),
            resnet_name.removesuffix("-swa"),
        )


def test_overriding_epochs_drops_restarts_past_the_new_end(tmp_path):
    """``crmn-viz train --epochs 3`` on a zoo recipe (a quick trial) stays a valid recipe."""
    from crmn_viz.training import cycle_starts, override_epochs

    recipe = load_recipe(
        _restart_recipe(tmp_path, "[{ at_epoch = 2, lr = 0.1 }, { at_epoch = 5, lr = 0.05 }]")
    )
    assert override_epochs(recipe, 3) == [{"at_epoch": 5, "lr": 0.05}]
    assert recipe.epochs == 3 and cycle_starts(recipe) == [(0, 0.2), (2, 0.1)]
    assert override_epochs(recipe, 2) == [{"at_epoch": 2, "lr": 0.1}] and cycle_starts(recipe) == [(0, 0.2)]
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        override_epochs(recipe, 0)


# ----------------------------------------------------------------------------- init_from and SWA


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.named_parameters()}


@needs_mnist
def test_init_from_starts_at_the_parents_weights_and_the_card_names_the_parent(tmp_path):
    parent = load_recipe(write_recipe(tmp_path, 1))
    train(parent, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    parent_model = load(tmp_path / "ck" / "tiny-mnist", device="cpu")
    # lr 0: the child's SGD steps move nothing, so its weights must be exactly the parent's
    child = dataclasses.replace(
        parent, name="tiny-child", init_from=str(tmp_path / "ck" / "tiny-mnist"), lr=0.0, schedule="constant"
    )
    train(child, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    child_model = load(tmp_path / "ck" / "tiny-child", device="cpu")
    expected, got = _parameters(parent_model), _parameters(child_model)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=0, atol=0, msg=name)
    record = child_model.card["training"]["initialised_from"]
    assert record["checkpoint"] == "tiny-mnist"
    assert record["weights_sha256"] == parent_model.card["weights_sha256"]
    assert record["metrics"] == parent_model.card["metrics"] and record["epochs"] == 1
    # and a random start differs from the parent: the test above can fail
    fresh = dataclasses.replace(child, name="tiny-fresh", init_from="")
    train(fresh, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    fresh_parameters = _parameters(load(tmp_path / "ck" / "tiny-fresh", device="cpu"))
    assert any(not torch.equal(fresh_parameters[name], expected[name]) for name in expected)


@needs_mnist
def test_init_from_refuses_a_checkpoint_of_other_model_options(tmp_path):
    parent = load_recipe(write_recipe(tmp_path, 1))
    train(parent, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    wider = dataclasses.replace(
        parent,
        name="tiny-wider",
        init_from=str(tmp_path / "ck" / "tiny-mnist"),
        model={**parent.model, "width": 8},
    )
    with pytest.raises(ValueError, match="model options differ.*width"):
        train(wider, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    other_arch = dataclasses.replace(
        parent, name="tiny-resnet", arch="resnet", init_from=str(tmp_path / "ck" / "tiny-mnist"), model={}
    )
    with pytest.raises(ValueError, match="is a crmn model on mnist, but the recipe trains a resnet"):
        train(other_arch, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)


@needs_mnist
def test_swa_ships_the_equal_weight_average_of_its_epochs_with_recomputed_batchnorm(tmp_path):
    """Izmailov et al. 2018: the shipped weights are the mean of the weights after each averaged
    epoch (here epochs 2 and 3 of 3; the run is interrupted after epoch 2 and resumed, so the
    running average must survive a resume), and each BatchNorm's running mean is the mean, over
    one pass of training batches, of that layer's batch means under the averaged weights."""
    recipe = dataclasses.replace(
        load_recipe(write_recipe(tmp_path, 3)), schedule="constant", swa_from_epoch=2, lr=0.1
    )
    runs = tmp_path / "runs" / "tiny-mnist"
    train(recipe, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False, stop_after_epoch=2)
    after_2 = torch.load(runs / "last_state.pt", weights_only=True)["model"]
    train(recipe, str(SHARED_DATA), tmp_path / "runs", tmp_path / "ck", progress=False)
    after_3 = torch.load(runs / "last_state.pt", weights_only=True)["model"]
    shipped = load(tmp_path / "ck" / "tiny-mnist", device="cpu")
    for name, value in shipped.named_parameters():
        assert not torch.equal(after_2[name], after_3[name]), name  # lr 0.1: the epochs moved it
        torch.testing.assert_close(value.detach(), (after_2[name] + after_3[name]) / 2, msg=name)

    # BatchNorm statistics, re-derived: mean of the batch means at the stem's BatchNorm input
    from crmn_viz.training import in_memory_data

    data = in_memory_data("mnist", "train", str(SHARED_DATA))
    batches = list(data.epoch(recipe.epochs, recipe.batch_size, recipe.seed))[: recipe.max_train_batches]
    stem_means = [shipped.stem(x).mean(dim=(0, 2, 3)) for x, _ in batches]
    torch.testing.assert_close(shipped.stem_bn.running_mean, torch.stack(stem_means).mean(0))
    assert not torch.allclose(shipped.stem_bn.running_mean, after_3["stem_bn.running_mean"])

    log = [json.loads(line) for line in (runs / "metrics.jsonl").read_text().splitlines()]
    assert [entry.get("swa_epochs_averaged") for entry in log] == [None, 1, 2]
    assert "iterate_test_accuracy" in log[-1]
    assert log[-1]["test_accuracy"] == pytest.approx(shipped.card["metrics"]["test_accuracy"])


@pytest.mark.parametrize(
    "key, message",
    [
        ("swa_from_epoch = 4", "swa_from_epoch must be 0 .off. or an epoch in 1..epochs=3"),
        ('schedule = "linear"', "schedule must be one of onecycle, step, cosine, constant, round_robin"),
    ],
)
def test_invalid_swa_or_schedule_is_refused_with_a_reason(tmp_path, key, message):
    path = write_recipe(tmp_path, 3)
    path.write_text(path.read_text() + key + "\n")
    with pytest.raises(ValueError, match=message):
        load_recipe(path)
