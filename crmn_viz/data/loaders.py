"""DataLoaders with reproducible shuffling and worker seeding, optionally distributed."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and NumPy's RNGs from the worker's torch seed.

    The DataLoader already gives each worker the torch seed ``base_seed + worker_id`` (with
    ``base_seed`` drawn from the loader's generator); this extends it to ``random`` and NumPy.
    """
    worker_seed = torch.initial_seed() % 2**32
    random.seed(worker_seed)
    np.random.seed(worker_seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    distributed: bool = False,
    *,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> DataLoader:
    """A DataLoader whose order and augmentation are reproducible from ``seed``.

    Args:
        dataset: map-style dataset.
        batch_size: samples per batch (per process when distributed).
        shuffle: shuffle each epoch (order fixed by ``seed`` and, when distributed, the epoch).
        num_workers: loader processes; workers are seeded from ``seed`` via the loader's
            generator. With 0 workers, random augmentation uses torch's global RNG, so call
            ``torch.manual_seed`` yourself for reproducible augmentation.
        seed: seed of the shuffling generator and worker seeds.
        distributed: shard with :class:`DistributedSampler` (one shard per rank); call
            :func:`set_loader_epoch` at each epoch start so shuffling changes between epochs.
        drop_last: drop the last incomplete batch (and, distributed, make shards equal by
            dropping rather than padding).
        pin_memory: pin host memory; default: when CUDA is available.
        num_replicas, rank: distributed world size and rank; default from the initialised
            process group.

    Returns:
        The :class:`DataLoader`.
    """
    sampler = None
    generator_seed = seed
    if distributed:
        sampler = DistributedSampler(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        # Different ranks get different augmentation streams; shuffling is shared via the sampler.
        generator_seed = seed + 1_000_003 * sampler.rank
    generator = torch.Generator()
    generator.manual_seed(generator_seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=seed_worker if num_workers > 0 else None,
        generator=generator,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        persistent_workers=False,
    )


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell a distributed loader's sampler the epoch (no-op for other loaders)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
