"""A classification dataset over images already decoded into one uint8 tensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset


class InMemoryImageDataset(Dataset):
    """Items ``(transform(images[i] as uint8 [C, H, W]), targets[i])`` from memory.

    Same attributes as a preloaded :class:`~crmn_viz.data.jpeg_archive.ArchiveImageFolder`
    (``preloaded_images``, ``targets``, ``classes``, ``class_to_idx``), so code that wants the
    whole split as one tensor works with either.

    Args:
        images: uint8 ``[N, H, W, C]``.
        targets: ``N`` integer labels.
        classes: class names in label order.
        transform: applied to each uint8 ``[C, H, W]`` image.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: Sequence[int],
        classes: Sequence[str],
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be uint8 [N, H, W, C], got {images.dtype} {tuple(images.shape)}")
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.preloaded_images = images
        self.targets = [int(target) for target in targets]
        self.classes = list(classes)
        self.class_to_idx = {name: label for label, name in enumerate(self.classes)}
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = self.preloaded_images[index].permute(2, 0, 1)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]
