r"""PAT — physics-aware training (Wright, Onodera, Stein et al., Nature 601, 549, 2022).

Backpropagation through the *real* physical system, with the physics' Jacobian borrowed from a
differentiable digital twin fitted to measurements of that system:

1. **Data (physical queries, counted as setup).** Before the first training step
   (:meth:`PhysicsAwareTraining.setup`), each block's physical system is driven with
   ``twin_samples`` random drives and measured. The drives are made the
   way the block makes its own: ``block.drive(u)`` with ``u ~ U(0, 1)`` on the block's input
   features (hidden blocks then divide each sample by its maximum, unused channels stay at 0),
   so the twin is fitted on the region of drive space training visits.
2. **Twin (digital FLOPs, counted as setup).** One :class:`~phyll.twin.MLPTwin` per block
   (hidden widths ``twin_hidden``, activation ``twin_activation``) is fitted with Adam on the
   pairs; the held-out relative MSE is reported in :meth:`PhysicsAwareTraining.describe`
   (``twin_fit``). The engine runs ``setup`` under its setup meter, so both steps are counted
   there, apart from the training epochs.
3. **Training.** The network (neutral label code in the input, as the architecture the local
   rules train) plus the rule's own classifier head (layer norm + linear on the last block's
   output, or on all block outputs) is trained end to end with cross-entropy and Adam. Each
   block's physics is measured through the block with the twin as surrogate
   (:meth:`~phyll.network.PhysicalBlock.measure`, :class:`~phyll.network.SurrogateGradient`):
   the forward pass is the real system (``torch.no_grad()``: noise, fabrication error and
   perturbations included), the backward pass returns the twin's vector-Jacobian product at
   the same drive.
4. **Refit (optional).** With ``refit_every=N`` the twins are refitted every N training steps
   (``refit_epochs`` epochs, warm start) on the initial pairs plus the latest
   drive → measurement pairs measured by training itself (no extra queries; the fitting FLOPs
   are counted). This follows the drive distribution as the weights move.

Prediction: one physical pass per sample and block (neutral label), then the head.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.backprop import HeadParams, HeadRule
from phyll.learning.base import OptimizerFactory, evaluating
from phyll.network import Model, SurrogateGradient
from phyll.params import check, param
from phyll.systems.base import PhysicalSystem
from phyll.twin import FitReport, MLPTwin, TwinActivation


def physics_aware(drive: Tensor, system: PhysicalSystem, twin: MLPTwin) -> Tensor:
    """Real measurement of ``drive`` whose gradient is the twin's VJP."""
    return SurrogateGradient.apply(drive, system, twin.evaluate)


@dataclass(frozen=True)
class PATParams(HeadParams):
    """PAT's parameters: the head's, and how each block's twin is fitted."""

    twin_samples: int = param(
        1024, "drive → measurement pairs measured per block for the twin", low=10, high=2**22
    )
    twin_hidden: tuple[int, ...] = param(
        (128, 128), "hidden widths of each MLP twin", low=1, high=2**16
    )
    twin_activation: TwinActivation = param("silu", "hidden activation of each twin")
    twin_epochs: int = param(30, "epochs of the first twin fit")
    twin_lr: float = param(3e-3, "Adam learning rate of the twin fits")
    heldout_fraction: float = param(0.2, "part of the pairs held out to report the twin's error")
    refit_every: int = param(0, "refit the twins every this many training steps (0: never)")
    refit_epochs: int = param(10, "epochs of each refit")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.twin_samples >= 10, f"twin_samples must be >= 10, got {self.twin_samples}")
        check(self.twin_epochs >= 1, f"twin_epochs must be >= 1, got {self.twin_epochs}")
        check(
            self.refit_every >= 0 and self.refit_epochs >= 0,
            "refit_every and refit_epochs must be >= 0",
        )
        check(0 <= self.heldout_fraction < 1, "heldout_fraction must be in [0, 1)")
        check(all(h >= 1 for h in self.twin_hidden), "twin_hidden widths must be >= 1")


class PhysicsAwareTraining(HeadRule):
    """Physics-aware training with one fitted MLP twin per block (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the twin data
    and the twins' initial weights. Parameters: :class:`PATParams`.
    """

    name = "pat"
    model_free = False
    Params = PATParams
    params: PATParams

    def __init__(
        self,
        model: Model,
        params: PATParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        p = self.params
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 4111)
            self.twins = [
                MLPTwin(b.system.n_inputs, b.system.n_outputs, p.twin_hidden, p.twin_activation)
                for b in self.network.blocks
            ]
        device = self.network.blocks[0].linear.weight.device
        for twin in self.twins:
            twin.to(device)
        self.steps = 0
        self.twin_queries = 0
        self.fit_reports: list[list[FitReport]] = []  # one list of per-block reports per fit
        self._pairs: list[list[Tensor]] = []  # initial twin data per block: [drives, measured]
        self._recent: list[list[list[Tensor]]] = [[] for _ in self.network.blocks]

    # ------------------------------------------------------------------ twin
    def collect(self, n: int) -> list[list[Tensor]]:
        """Drive every block's system with ``n`` random block-like drives (queries counted)."""
        pairs = []
        for block in self.network.blocks:
            u = torch.rand(n, block.in_features, generator=self.generator, device=self.device)
            with torch.no_grad():
                pairs.append([block.drive(u), block.measure(u)])
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
                    lr=self.params.twin_lr,
                    heldout_fraction=self.params.heldout_fraction,
                    generator=self.generator,
                    reset_scaling=not extra,
                )
            )
        self.fit_reports.append(reports)
        return reports

    def setup(self) -> None:
        """Measure the twin data and fit the twins once (the engine counts it as setup)."""
        if not self._pairs:
            self._pairs = self.collect(self.params.twin_samples)
            self.fit_twins(self.params.twin_epochs, extra=False)

    # ------------------------------------------------------------------ training
    def features(self, x: Tensor, physics_aware_grad: bool) -> list[Tensor]:
        """Every block's output for data ``x``; the physics' gradient from the twins if asked."""
        h = self.network.embed(x, None)
        outputs = []
        for i, (block, twin) in enumerate(zip(self.network.blocks, self.twins, strict=True)):
            z = None
            if block.use_physics:
                if physics_aware_grad:
                    z = block.measure(h, surrogate=twin.evaluate)
                    self._remember(i, block.drive(h).detach(), z.detach())
                else:
                    z = block.measure(h)
            h = block.digital(z, h)
            outputs.append(h)
        return outputs

    def _remember(self, block: int, drive: Tensor, z: Tensor) -> None:
        if not self.params.refit_every:
            return
        recent = self._recent[block]
        recent.append([drive, z])
        while sum(d.shape[0] for d, _ in recent) > self.params.twin_samples:
            recent.pop(0)

    def refit_due(self) -> bool:
        """Whether the next training step refits the twins first."""
        every = self.params.refit_every
        return bool(every and self.steps and self.steps % every == 0)

    def step_signature(self, x: Tensor, y: Tensor) -> Hashable | None:
        """None for a step that refits the twins (its work depends on the data kept)."""
        return None if self.refit_due() or not self._pairs else super().step_signature(x, y)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.setup()  # a no-op after the engine's setup phase; direct users need no extra call
        if self.refit_due():
            self.fit_twins(self.params.refit_epochs, extra=True)
        self.model.train()
        loss = F.cross_entropy(self.head_scores(self.features(x, True)), y.long())
        self.steps += 1
        return self.step_on(loss)

    def scores(self, x: Tensor) -> Tensor:
        with evaluating(self.model), torch.no_grad():
            return self.head_scores(self.features(x, False))

    # ------------------------------------------------------------------ records
    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
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
            "twins": [t.state_dict() for t in self.twins],
            "pairs": self._pairs,
            "recent": self._recent,
            "steps": self.steps,
            "twin_queries": self.twin_queries,
            "fit_reports": [[asdict(r) for r in fit] for fit in self.fit_reports],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for twin, s in zip(self.twins, state["twins"], strict=True):
            twin.load_state_dict(s)
        # a checkpoint is loaded on the host: the twin data go back to the model's device
        self._pairs = [[t.to(self.device) for t in p] for p in state["pairs"]]
        self._recent = [[[t.to(self.device) for t in p] for p in r] for r in state["recent"]]
        self.steps = state["steps"]
        self.twin_queries = state["twin_queries"]
        self.fit_reports = [[FitReport(**r) for r in fit] for fit in state["fit_reports"]]
