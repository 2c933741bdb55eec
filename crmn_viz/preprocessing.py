"""Turn images into the normalised tensors a checkpoint expects, from its model card."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

__all__ = ["Preprocessor"]


@dataclass(frozen=True)
class Preprocessor:
    """Resize, convert channels, scale to [0, 1] and normalise with the card's mean/std.

    Call it on one PIL image or a list of them to get [B, C, H, W] float32.
    """

    input_size: tuple[int, int]  # (height, width)
    in_channels: int  # 1 (grey) or 3 (RGB)
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale
    std: tuple[float, ...]  # per channel, on the [0, 1] scale

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> Preprocessor:
        """Build from a model card (``input_size``/``in_channels``/``normalization``)."""
        config = card.get("config", {})
        size = card.get("input_size", config.get("input_size", 32))
        height, width = (size, size) if isinstance(size, int) else size
        channels = int(card.get("in_channels", config.get("in_channels", 3)))
        norm = card.get("normalization") or {"mean": [0.0] * channels, "std": [1.0] * channels}
        return cls((int(height), int(width)), channels, tuple(norm["mean"]), tuple(norm["std"]))

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """One image -> [C, H, W] normalised (bilinear resize to the input size)."""
        mode = "L" if self.in_channels == 1 else "RGB"
        image = image.convert(mode)
        height, width = self.input_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(array.copy()).permute(2, 0, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(self.std, dtype=torch.float32)[:, None, None]
        return (tensor - mean) / std

    def __call__(self, images: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        if isinstance(images, Image.Image):
            images = [images]
        return torch.stack([self.to_tensor(img) for img in images])

    def denormalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Inverse of the normalisation: [B, C, H, W] -> values in [0, 1]."""
        mean = torch.tensor(self.mean, dtype=batch.dtype, device=batch.device)[:, None, None]
        std = torch.tensor(self.std, dtype=batch.dtype, device=batch.device)[:, None, None]
        return (batch * std + mean).clamp(0, 1)
