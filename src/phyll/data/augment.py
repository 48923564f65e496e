"""Training-time augmentation of image batches: random translations.

A network that sees each training digit shifted by up to a pixel learns the small translation
invariance a 3,400-image training set cannot show it (Simard et al., ICDAR 2003, used
translated and distorted copies the same way). Shifts are drawn per sample from the
augmentation's own seeded generator, whose state is checkpointed, so a resumed run draws the
same shifts as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.errors import ConfigError


class RandomShift:
    """Translate every image of a flat batch ``[B, H·W]`` by a random integer (dy, dx) with
    ``|dy|, |dx| ≤ max_shift``, filling the uncovered border with 0 (dark)."""

    def __init__(self, image_shape: tuple[int, int], max_shift: int, seed: int = 0) -> None:
        if max_shift < 1:
            raise ConfigError(f"a random shift needs max_shift >= 1, got {max_shift}")
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self.max_shift = int(max_shift)
        self.generator = torch.Generator().manual_seed(seed + 31)

    def __call__(self, x: Tensor) -> Tensor:
        h, w = self.image_shape
        if x.dim() != 2 or x.shape[1] != h * w:
            raise ConfigError(f"RandomShift expects [batch, {h * w}] images, got {list(x.shape)}")
        s = self.max_shift
        offsets = torch.randint(0, 2 * s + 1, (2, x.shape[0]), generator=self.generator)
        padded = F.pad(x.view(-1, h, w), (s, s, s, s))
        out = torch.empty_like(x).view(-1, h, w)
        for dy, dx in itertools.product(range(2 * s + 1), repeat=2):
            rows = ((offsets[0] == dy) & (offsets[1] == dx)).nonzero().squeeze(1).to(x.device)
            if len(rows):
                out[rows] = padded[rows, dy : dy + h, dx : dx + w]
        return out.view(x.shape[0], h * w)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
