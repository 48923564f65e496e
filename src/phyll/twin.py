r"""Differentiable digital twins: MLPs fitted to measured drive → measurement pairs.

Physics-aware training (:mod:`phyll.learning.pat`) needs a model of each physical system only
for its *backward* pass. :class:`MLPTwin` learns one from data: it standardises drives and
measurements with statistics of the fitting set, maps them through an MLP (hidden widths and
activation configurable) and is fitted with Adam on the mean squared error. Its quality is
reported as the **relative MSE** on a held-out part of the pairs,

.. math:: \mathrm{rel\,MSE} = \frac{\sum (\hat z - z)^2}{\sum (z - \bar z)^2},

(0 = perfect, 1 = no better than predicting the mean measurement of every channel).

All fitting work is ordinary PyTorch: run it under a :class:`~phyll.accounting.Meter` and its
FLOPs (forward, backward) are counted as digital work.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TwinActivation = Literal["silu", "relu", "tanh"]
_ACTIVATIONS = {"silu": F.silu, "relu": F.relu, "tanh": torch.tanh}


@dataclass
class FitReport:
    """Outcome of one fit: relative MSE on the fitting and held-out pairs, sizes, epochs."""

    train_rel_mse: float
    heldout_rel_mse: float
    n_train: int
    n_heldout: int
    epochs: int


def relative_mse(prediction: Tensor, target: Tensor) -> float:
    """Squared error relative to the per-channel variance of the target (0 = perfect)."""
    residual = (prediction - target).pow(2).sum()
    spread = (target - target.mean(0)).pow(2).sum().clamp_min(1e-12)
    return float(residual / spread)


class MLPTwin(nn.Module):
    """A differentiable surrogate ``drive [B, n_inputs] → measurement [B, n_outputs]``.

    Args:
        n_inputs: drive channels of the system.
        n_outputs: measured channels.
        hidden: widths of the hidden layers.
        activation: hidden nonlinearity (``silu``, ``relu`` or ``tanh``).
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        hidden: tuple[int, ...] = (256, 256),
        activation: TwinActivation = "silu",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"unknown twin activation {activation!r}")
        widths = [n_inputs, *hidden, n_outputs]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.hidden = tuple(hidden)
        self.activation = activation
        for name, size in (("in", n_inputs), ("out", n_outputs)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    def mlp(self, u: Tensor) -> Tensor:
        """The network on standardised drive → standardised measurement.

        Written with functional ops (no submodule calls), so that it can run inside an
        autograd backward pass (PAT's VJP) without module hooks, e.g. those of
        ``FlopCounterMode``'s module tracker, which refuse nested ``autograd.grad`` calls.
        """
        act = _ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            u = act(F.linear(u, layer.weight, layer.bias))
        last = self.layers[-1]
        return F.linear(u, last.weight, last.bias)

    def evaluate(self, drive: Tensor) -> Tensor:
        """Predicted measurement of ``drive`` (hook-free; ``twin(drive)`` is the same)."""
        u = (drive - self.in_mean) / self.in_std
        return self.out_mean + self.out_std * self.mlp(u)

    def forward(self, drive: Tensor) -> Tensor:
        return self.evaluate(drive)

    def fit(
        self,
        drives: Tensor,
        measurements: Tensor,
        *,
        epochs: int = 100,
        lr: float = 3e-3,
        batch_size: int = 128,
        heldout_fraction: float = 0.2,
        generator: torch.Generator | None = None,
        reset_scaling: bool = True,
    ) -> FitReport:
        """Fit on the pairs (a ``heldout_fraction`` is held out to report the error);
        ``generator`` (on the drives' device) draws the split and the batches."""
        if drives.shape[0] != measurements.shape[0] or drives.shape[0] < 2:
            raise ValueError("need at least 2 matching drive/measurement pairs to fit a twin")
        drives, measurements = drives.detach(), measurements.detach()
        n = drives.shape[0]
        order = torch.randperm(n, generator=generator, device=drives.device)
        n_held = max(1, round(heldout_fraction * n)) if heldout_fraction > 0 else 0
        held, fit = order[:n_held], order[n_held:]
        x, z = drives[fit], measurements[fit]
        if reset_scaling:
            self.in_mean.copy_(x.mean(0))
            self.in_std.copy_(x.std(0).clamp_min(1e-6))
            self.out_mean.copy_(z.mean(0))
            self.out_std.copy_(z.std(0).clamp_min(1e-6))
        optimizer = torch.optim.Adam(self.layers.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(epochs, 1))
        for _ in range(epochs):
            perm = torch.randperm(len(fit), generator=generator, device=drives.device)
            for i in range(0, len(fit), batch_size):
                idx = perm[i : i + batch_size]
                loss = F.mse_loss(self.mlp((x[idx] - self.in_mean) / self.in_std),
                                  (z[idx] - self.out_mean) / self.out_std)  # fmt: skip
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            schedule.step()
        with torch.no_grad():
            train_err = relative_mse(self.evaluate(x), z)
            held_err = (
                relative_mse(self.evaluate(drives[held]), measurements[held])
                if n_held
                else float("nan")
            )
        return FitReport(train_err, held_err, len(fit), n_held, epochs)
