"""make_loader: reproducible shuffling and worker seeding; distributed sharding."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from crmn_viz.data import make_loader, set_loader_epoch


class RandomDrawDataset(Dataset):
    """Item ``i`` is ``(i, torch draw, numpy draw, python draw)``: exposes every RNG a
    transform might use."""

    def __len__(self) -> int:
        return 24

    def __getitem__(self, index: int) -> tuple[int, float, float, float]:
        return index, float(torch.rand(())), float(np.random.rand()), random.random()


def _epoch(loader) -> list[tuple[int, float, float, float]]:
    rows = []
    for indices, torch_draws, numpy_draws, python_draws in loader:
        rows += list(zip(indices.tolist(), torch_draws.tolist(), numpy_draws.tolist(), python_draws.tolist()))
    return rows


def test_same_seed_same_order_and_augmentation_draws() -> None:
    dataset = RandomDrawDataset()
    first = _epoch(make_loader(dataset, batch_size=4, shuffle=True, num_workers=2, seed=7))
    second = _epoch(make_loader(dataset, batch_size=4, shuffle=True, num_workers=2, seed=7))
    other = _epoch(make_loader(dataset, batch_size=4, shuffle=True, num_workers=2, seed=8))
    assert first == second
    assert [row[0] for row in first] != list(range(24))  # shuffled
    assert first != other
    numpy_draws = [row[2] for row in first]
    assert len(set(numpy_draws)) == len(numpy_draws)  # workers do not repeat each other's draws


def test_distributed_shards_cover_dataset_and_reshuffle_by_epoch() -> None:
    dataset = RandomDrawDataset()
    loaders = [
        make_loader(
            dataset,
            batch_size=5,
            shuffle=True,
            num_workers=0,
            seed=3,
            distributed=True,
            num_replicas=2,
            rank=rank,
        )
        for rank in (0, 1)
    ]
    assert all(isinstance(loader.sampler, DistributedSampler) for loader in loaders)
    shards = [[row[0] for row in _epoch(loader)] for loader in loaders]
    assert sorted(shards[0] + shards[1]) == list(range(24))
    assert set(shards[0]).isdisjoint(shards[1])
    epoch0 = [row[0] for row in _epoch(loaders[0])]
    set_loader_epoch(loaders[0], 1)
    epoch1 = [row[0] for row in _epoch(loaders[0])]
    assert epoch0 == shards[0] and epoch1 != epoch0
