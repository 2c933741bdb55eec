"""Per-channel pixel statistics, used to derive the normalisation constants in ``info``."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Subset


def compute_channel_stats(
    dataset: Dataset,
    batch_size: int = 500,
    num_workers: int = 0,
    max_samples: int | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel over all pixels of ``dataset``.

    Args:
        dataset: items whose first element is an image float tensor ``[C, H, W]`` (build it with
            ``normalize=False`` and no augmentation so values are the raw ``[0, 1]`` pixels).
        batch_size, num_workers: loader settings for the pass.
        max_samples: use only the first ``max_samples`` items.

    Returns:
        ``(mean, std)``, each a tuple of ``C`` floats; std is the population std of the pooled pixels.
    """
    if max_samples is not None:
        dataset = Subset(dataset, range(min(max_samples, len(dataset))))
    total = sum_of_squares = None
    count = 0
    for batch in DataLoader(dataset, batch_size=batch_size, num_workers=num_workers):
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        pixels = images.to(torch.float64).transpose(0, 1).reshape(images.shape[1], -1)
        batch_sum, batch_squares = pixels.sum(dim=1), (pixels * pixels).sum(dim=1)
        total = batch_sum if total is None else total + batch_sum
        sum_of_squares = batch_squares if sum_of_squares is None else sum_of_squares + batch_squares
        count += pixels.shape[1]
    if total is None or sum_of_squares is None:
        raise ValueError("empty dataset")
    mean = total / count
    std = (sum_of_squares / count - mean * mean).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
