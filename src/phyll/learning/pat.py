r"""PAT — physics-aware training (Wright, Onodera, Stein et al., Nature 601, 549, 2022).

Backpropagation through the *real* physical system, with the physics' Jacobian borrowed from a
differentiable digital twin fitted to measurements of that system:

1. **Data (physical queries, counted).** At the first training step, each block's physical
   system is driven with ``twin_samples`` random drives and measured. The drives are made the
   way the block makes its own: ``block.drive(u)`` with ``u ~ U(0, 1)`` on the block's input
   features (hidden blocks then divide each sample by its maximum, unused channels stay at 0),
   so the twin is fitted on the region of drive space training visits.
2. **Twin (digital FLOPs, counted).** One :class:`~phyll.twin.MLPTwin` per block (hidden widths
   ``twin_hidden``, activation ``twin_activation``) is fitted with Adam on the pairs; the
   held-out relative MSE is reported in :meth:`PhysicsAwareTraining.describe` (``twin_fit``).
   Both steps run inside ``train_step``, so a :class:`~phyll.accounting.Meter` around training
   counts them.
3. **Training.** The network (neutral label code in the input, as the architecture the local
   rules train) plus the rule's own classifier head (layer norm + linear on the last block's
   output, or on all block outputs) is trained end to end with cross-entropy and Adam. Each
   block's physics is :class:`PhysicsAwareFunction`: the forward pass is the real system
   (``torch.no_grad()``: noise, fabrication error and perturbations included), the backward
   pass returns the twin's vector-Jacobian product at the same drive.
4. **Refit (optional).** With ``refit_every=N`` the twins are refitted every N training steps
   (``refit_epochs`` epochs, warm start) on the initial pairs plus the latest
   drive → measurement pairs measured by training itself (no extra queries; the fitting FLOPs
   are counted). This follows the drive distribution as the weights move.

Prediction: one physical pass per sample and block (neutral label), then the head.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.backprop import ClassifierHead, HeadInput, head_features
from phyll.learning.base import LearningRule
from phyll.network import PhysicalNetwork
from phyll.systems.base import PhysicalSystem
from phyll.twin import FitReport, MLPTwin, TwinActivation


class PhysicsAwareFunction(torch.autograd.Function):
    """Forward: the physical system (no autograd). Backward: the twin's VJP at the drive."""

    @staticmethod
    def forward(ctx: Any, drive: Tensor, system: PhysicalSystem, twin: MLPTwin) -> Tensor:
        ctx.save_for_backward(drive)
        ctx.twin = twin
        with torch.no_grad():
            return system(drive.detach())

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (drive,) = ctx.saved_tensors
        with torch.enable_grad():
            d = drive.detach().requires_grad_(True)
            (grad_drive,) = torch.autograd.grad(ctx.twin.evaluate(d), d, grad_output)
        return grad_drive, None, None


def physics_aware(drive: Tensor, system: PhysicalSystem, twin: MLPTwin) -> Tensor:
    """Real measurement of ``drive`` whose gradient is the twin's VJP."""
    return PhysicsAwareFunction.apply(drive, system, twin)


class PhysicsAwareTraining(LearningRule):
    """Physics-aware training with one fitted MLP twin per block (see module docstring).

    Args:
        network: the physical network to train.
        seed: seeds twin data, twin and head initialisation.
        lr: Adam learning rate of the blocks and the head.
        twin_samples: drive → measurement pairs collected per block for the first fit.
        twin_hidden: hidden widths of each MLP twin.
        twin_activation: hidden activation of each twin.
        twin_epochs: epochs of the first fit.
        twin_lr: Adam learning rate of the twin fit.
        heldout_fraction: part of the pairs held out to report the twin's error.
        refit_every: refit the twins every this many training steps (0: never).
        refit_epochs: epochs of each refit.
        head_input: the head reads the ``"last"`` block's output or ``"all"`` block outputs.
    """

    name = "pat"
    model_free = False

    def __init__(
        self,
        network: PhysicalNetwork,
        seed: int = 0,
        lr: float = 1e-2,
        twin_samples: int = 1024,
        twin_hidden: tuple[int, ...] | list[int] = (128, 128),
        twin_activation: TwinActivation = "silu",
        twin_epochs: int = 30,
        twin_lr: float = 3e-3,
        heldout_fraction: float = 0.2,
        refit_every: int = 0,
        refit_epochs: int = 10,
        head_input: HeadInput = "last",
    ) -> None:
        super().__init__(network, seed)
        if network.n_classes < 2:
            raise ValueError("PAT needs a network with at least 2 labels")
        if twin_samples < 10 or twin_epochs < 1 or refit_every < 0 or refit_epochs < 0:
            raise ValueError(
                "twin_samples must be >= 10, twin_epochs >= 1, refit_every/refit_epochs >= 0"
            )
        if head_input not in ("last", "all"):
            raise ValueError(f"head_input must be 'last' or 'all', got {head_input!r}")
        self.lr = lr
        self.twin_samples = twin_samples
        self.twin_epochs = twin_epochs
        self.twin_lr = twin_lr
        self.heldout_fraction = heldout_fraction
        self.refit_every = refit_every
        self.refit_epochs = refit_epochs
        self.head_input: HeadInput = head_input
        device = network.blocks[0].linear.weight.device
        with torch.random.fork_rng():
            torch.manual_seed(seed + 4099)
            self.head = ClassifierHead(head_features(network, head_input), network.n_classes)
            self.twins = [
                MLPTwin(b.system.n_inputs, b.system.n_outputs, tuple(twin_hidden), twin_activation)
                for b in network.blocks
            ]
        # the head lives with the blocks, so best-epoch weights, checkpoints and model.pt keep it
        network.add_module("head", self.head.to(device))
        for twin in self.twins:
            twin.to(device)
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)
        self.steps = 0
        self.twin_queries = 0
        self.fit_reports: list[list[FitReport]] = []  # one list of per-block reports per fit
        self._pairs: list[tuple[Tensor, Tensor]] = []  # initial twin data per block
        self._recent: list[list[tuple[Tensor, Tensor]]] = [[] for _ in network.blocks]

    # ------------------------------------------------------------------ twin
    def collect(self, n: int) -> list[tuple[Tensor, Tensor]]:
        """Drive every block's system with ``n`` random block-like drives (queries counted)."""
        pairs = []
        for block in self.network.blocks:
            u = torch.rand(n, block.in_features, generator=self.generator)
            drive = block.drive(u.to(block.linear.weight.device))
            with torch.no_grad():
                pairs.append((drive, block.measure(u.to(drive.device))))
            self.twin_queries += n
        return pairs

    def fit_twins(self, epochs: int, extra: bool) -> list[FitReport]:
        """(Re)fit every block's twin; with ``extra`` add the pairs measured in training."""
        reports = []
        for i, (twin, (drive, z)) in enumerate(zip(self.twins, self._pairs, strict=True)):
            if extra and self._recent[i]:
                drive = torch.cat([drive, *(d for d, _ in self._recent[i])])
                z = torch.cat([z, *(m for _, m in self._recent[i])])
            reports.append(
                twin.fit(
                    drive,
                    z,
                    epochs=epochs,
                    lr=self.twin_lr,
                    heldout_fraction=self.heldout_fraction,
                    generator=self.generator,
                    reset_scaling=not extra,
                )
            )
        self.fit_reports.append(reports)
        return reports

    # ------------------------------------------------------------------ training
    def features(self, x: Tensor, physics_aware_grad: bool) -> Tensor:
        """Head input for data ``x``; physics through :class:`PhysicsAwareFunction` if asked."""
        h = self.network.embed(x, None)
        outputs = []
        for i, (block, twin) in enumerate(zip(self.network.blocks, self.twins, strict=True)):
            z = None
            if block.use_physics:
                drive = block.drive(h)
                if physics_aware_grad:
                    z = physics_aware(drive, block.system, twin)
                    self._remember(i, drive.detach(), z.detach())
                else:
                    z = block.measure(h)
            h = block.digital(z, h)
            outputs.append(h)
        return outputs[-1] if self.head_input == "last" else torch.cat(outputs, dim=1)

    def _remember(self, block: int, drive: Tensor, z: Tensor) -> None:
        if not self.refit_every:
            return
        recent = self._recent[block]
        recent.append((drive, z))
        while sum(d.shape[0] for d, _ in recent) > self.twin_samples:
            recent.pop(0)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        if not self._pairs:
            self._pairs = self.collect(self.twin_samples)
            self.fit_twins(self.twin_epochs, extra=False)
        elif self.refit_every and self.steps % self.refit_every == 0:
            self.fit_twins(self.refit_epochs, extra=True)
        self.network.train()
        self.head.train()
        loss = F.cross_entropy(self.head(self.features(x, True)), y.long())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.steps += 1
        return loss.item()

    def predict(self, x: Tensor) -> Tensor:
        self.network.eval()
        self.head.eval()
        with torch.no_grad():
            return self.head(self.features(x, False)).argmax(dim=1)

    # ------------------------------------------------------------------ records
    def describe(self) -> dict[str, Any]:
        twin = self.twins[0]
        return {
            **super().describe(),
            "lr": self.lr,
            "head_input": self.head_input,
            "twin": {"hidden": list(twin.hidden), "activation": twin.activation},
            "twin_samples": self.twin_samples,
            "twin_epochs": self.twin_epochs,
            "refit_every": self.refit_every,
            "twin_queries": self.twin_queries,
            "twin_fits": len(self.fit_reports),
            "twin_fit": [asdict(r) for r in self.fit_reports[-1]] if self.fit_reports else None,
            "twin_heldout_rel_mse": (
                [r.heldout_rel_mse for r in self.fit_reports[-1]] if self.fit_reports else None
            ),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "twins": [t.state_dict() for t in self.twins],
            "pairs": self._pairs,
            "recent": self._recent,
            "steps": self.steps,
            "twin_queries": self.twin_queries,
            "fit_reports": [[asdict(r) for r in fit] for fit in self.fit_reports],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        for twin, s in zip(self.twins, state["twins"], strict=True):
            twin.load_state_dict(s)
        self._pairs = state["pairs"]
        self._recent = state["recent"]
        self.steps = state["steps"]
        self.twin_queries = state["twin_queries"]
        self.fit_reports = [[FitReport(**r) for r in fit] for fit in state["fit_reports"]]
