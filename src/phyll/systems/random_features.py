r"""A digital control: a fixed random quadratic map of the same size as a physical system.

``RandomFeatures`` computes :math:`z = |R a|^2 / n` for a fixed complex Gaussian matrix
:math:`R` (``n_outputs × n_inputs``, seeded), in [0, ·) like a square-law detector. It stands
in for a physical system to test whether the physics does more than any random nonlinear
feature map of its size would (``phyll compare``'s ``random-features`` control). It queries no
hardware: every call is digital work (:attr:`digital_model` is True), so its FLOPs are counted
as the learner's and it makes no physical query, no device time and no physical energy.

Its outputs are laid out like the optical camera's image (:attr:`output_grid`, the automatic
grid of ``n_outputs`` when it is a rectangle), so a pooled optical network has its pooled
control; the map has no spatial structure, so pooling sums independent features.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from phyll.systems.base import MemoryNeed, PhysicalSystem
from phyll.systems.optical import auto_grid


class RandomFeatures(PhysicalSystem):
    """:math:`|R a|^2 / n_{in}` with a fixed seeded complex Gaussian ``R`` (digital work)."""

    differentiable = True
    digital_model = True

    def __init__(
        self, n_inputs: int, n_outputs: int, *, seed: int = 0, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(n_inputs, n_outputs, drive_range=(0.0, 1.0), device=device)
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        weights = torch.randn(n_inputs, n_outputs, 2, generator=generator)  # (re, im) pairs
        # R as a real [n_in, 2 n_out] matrix of interleaved (re, im) columns: the drive is
        # real, so R a is one real product (4 FLOPs per complex weight, not a complex
        # product's 8), with the same numbers
        self._map = weights.reshape(n_inputs, 2 * n_outputs).to(self.device)
        rows, cols = auto_grid(n_outputs)
        self.output_grid = (rows, cols) if rows * cols == n_outputs else None

    @classmethod
    def memory_need(cls, n_inputs: int, n_outputs: int, params: Any = None) -> MemoryNeed:
        """The float32 map ``[n_in, 2 n_out]`` kept (drawn in place); a call holds the field,
        its square and the powers."""
        return MemoryNeed(8 * n_inputs * n_outputs, 0, 4 * n_inputs + 20 * n_outputs)

    def _measure(self, drive: Tensor) -> Tensor:
        field = (drive @ self._map).view(drive.shape[0], self.n_outputs, 2)
        return field.square().sum(dim=2) / self.n_inputs

    def nominal(self) -> RandomFeatures:
        """The map is its own design model."""
        return self

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "seed": self.seed, "map": "|R a|^2 / n_inputs"}
