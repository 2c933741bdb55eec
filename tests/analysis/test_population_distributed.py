"""The population pass under ``torchrun --nproc_per_node 2`` (gloo on the CPU) equals one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from crmn_viz.analysis.population import PopulationTable, population_pass
from tests.analysis.conftest import tiny_analysis_model
from tests.conftest import TINY_CONFIGS

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES = 37  # odd: DistributedSampler pads rank 1 with a repeat of image 0, which must be dropped
BATCH, TOP_K = 4, 5

WORKER = """
import json, sys
from pathlib import Path

import numpy as np
import torch

from crmn_viz import create_model
from crmn_viz.analysis.population import population_pass

folder = Path(sys.argv[1])
config = json.loads((folder / "config.json").read_text())
model = create_model("crmn", **config).eval()
model.load_state_dict(torch.load(folder / "weights.pt", weights_only=True))
images = torch.from_numpy(np.load(folder / "images.npy", allow_pickle=False))
labels = torch.from_numpy(np.load(folder / "labels.npy", allow_pickle=False))
calls = []
labelled = population_pass(
    model, (images, labels), batch_size=4, top_k=5, cache_dir=folder / "cache",
    progress=lambda done, total: calls.append((done, total)),
)
unlabelled = population_pass(model, images, batch_size=4, top_k=5)  # scratch folder, no cache
rank = torch.distributed.get_rank()
for name, table in (("labelled", labelled), ("unlabelled", unlabelled)):
    arrays = {"labels": table.labels, "outputs": table.outputs, "counts": table.summary.class_counts}
    for quantity in table.quantities:
        arrays[f"values.{quantity}"] = table.values(quantity)
        arrays[f"sums.{quantity}"] = table.summary.class_sums[quantity]
        arrays[f"squares.{quantity}"] = table.summary.class_sum_squares[quantity]
        for end in ("top", "bottom"):
            arrays[f"{end}_values.{quantity}"] = getattr(table.summary, f"{end}_values")[quantity]
            arrays[f"{end}_indices.{quantity}"] = getattr(table.summary, f"{end}_indices")[quantity]
    np.savez(folder / f"{name}-rank{rank}.npz", **arrays)
(folder / f"progress-rank{rank}.json").write_text(json.dumps(calls))
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _arrays(table: PopulationTable) -> dict[str, np.ndarray]:
    arrays = {"labels": table.labels, "outputs": table.outputs, "counts": table.summary.class_counts}
    for quantity in table.quantities:
        arrays[f"values.{quantity}"] = table.values(quantity)
        arrays[f"sums.{quantity}"] = table.summary.class_sums[quantity]
        arrays[f"squares.{quantity}"] = table.summary.class_sum_squares[quantity]
        for end in ("top", "bottom"):
            arrays[f"{end}_values.{quantity}"] = getattr(table.summary, f"{end}_values")[quantity]
            arrays[f"{end}_indices.{quantity}"] = getattr(table.summary, f"{end}_indices")[quantity]
    return {name: np.asarray(array) for name, array in arrays.items()}


def _assert_same(distributed: dict[str, np.ndarray], single: dict[str, np.ndarray]) -> None:
    """Equal indices, labels and counts; values equal up to float32 rounding (the same image in
    another batch, on another thread count, may differ in the last bit); and the all-reduced
    sums equal to 1e-9 the float64 sums of the distributed run's own values per class."""
    assert set(distributed) == set(single)
    for name, expected in single.items():
        got = distributed[name]
        if "indices" in name or name in ("labels", "counts"):
            np.testing.assert_array_equal(got, expected, err_msg=name)
        else:
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=name)
    groups = distributed["labels"] if (distributed["labels"] >= 0).all() else distributed["outputs"].argmax(1)
    for name in [key for key in distributed if key.startswith("values.")]:
        quantity = name.removeprefix("values.")
        values = distributed[name].astype(np.float64)
        for group in range(len(distributed["counts"])):
            members = values[groups == group]
            if len(members) == 0:  # a class nobody predicted
                continue
            sums, squares = distributed[f"sums.{quantity}"][group], distributed[f"squares.{quantity}"][group]
            np.testing.assert_allclose(sums, members.sum(0), rtol=1e-9, atol=1e-12, err_msg=quantity)
            np.testing.assert_allclose(squares, (members**2).sum(0), rtol=1e-9, atol=1e-12, err_msg=quantity)
        for end in ("top", "bottom"):  # the merged exemplars carry the values stored for them
            indices = distributed[f"{end}_indices.{quantity}"]
            valid = indices >= 0
            steps, units = np.nonzero(valid.all(axis=-1))
            np.testing.assert_array_equal(
                distributed[f"{end}_values.{quantity}"][steps, units],
                distributed[name][indices[steps, units], steps[:, None], units[:, None]],
            )


# Not marked slow (two fresh Python processes importing torch: 20-40 s): CI runs the 2-process check.
def test_two_gloo_processes_equal_one_process(tmp_path: Path) -> None:
    model = tiny_analysis_model("crmn")
    generator = torch.Generator().manual_seed(11)
    images = torch.randn(IMAGES, *model.input_shape, generator=generator)
    labels = torch.randint(0, TINY_CONFIGS["crmn"]["num_outputs"], (IMAGES,), generator=generator)
    (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIGS["crmn"]))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    np.save(tmp_path / "images.npy", images.numpy())
    np.save(tmp_path / "labels.npy", labels.numpy())
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            str(script),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    single = {
        "labelled": _arrays(population_pass(model, (images, labels), batch_size=BATCH, top_k=TOP_K)),
        "unlabelled": _arrays(population_pass(model, images, batch_size=BATCH, top_k=TOP_K)),
    }
    for name, expected in single.items():
        for rank in (0, 1):  # every rank returns the whole table
            with np.load(tmp_path / f"{name}-rank{rank}.npz", allow_pickle=False) as archive:
                _assert_same({key: archive[key] for key in archive.files}, expected)
    with np.load(tmp_path / "labelled-rank0.npz", allow_pickle=False) as archive:
        assert archive["counts"].sum() == IMAGES  # the padded repeat of image 0 was not counted
    # one cache folder, written by rank 0 and renamed when complete
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1 and not folders[0].name.startswith(".partial")
    # each rank reports its own shard: 19 and 18 images (not the padded 19 and 19)
    shards = [json.loads((tmp_path / f"progress-rank{rank}.json").read_text())[-1] for rank in (0, 1)]
    assert shards == [[19, 19], [18, 18]]
