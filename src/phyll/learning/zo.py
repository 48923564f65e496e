r"""ZO — zeroth-order training of the blocks' digital weights by SPSA (Spall, 1992).

No gradient, no model, no feedback path: the loss is *measured* at perturbed weights and the
gradient estimated from the differences, as in simultaneous perturbation stochastic
approximation and multiplexed gradient descent on hardware (McCaughan et al., APL Machine
Learning 2023). Per step, for ``K = n_perturbations`` random directions
:math:`\Delta_k \in \{-1, +1\}^n` (Rademacher, drawn from the rule's seed) and the perturbation
size :math:`c` (``perturbation``), with antithetic pairs:

.. math:: \hat g = \frac{1}{K} \sum_k \frac{L(\theta + c\Delta_k) - L(\theta - c\Delta_k)}{2c}
          \,\Delta_k,

then an optimizer step (Adam by default) on :math:`\hat g`. The K directions are multiplexed:
averaged into one step. Two losses (``loss``):

* ``global`` (default): the cross-entropy of a readout head (layer norm + linear, on the last
  block's output or on all) on the data with the neutral label code. All blocks are perturbed
  at once and each perturbed pass runs the whole network again: every block after the first is
  driven anew (its drive depends on the weights before it); the first block's measurement does
  not depend on any trainable weight and is measured once per step. The head is digital and is
  trained on the unperturbed pass by its exact gradient (as a readout is).
* ``local``: PhyLL's contrastive loss of each block (:mod:`phyll.learning.phyll`: positive and
  negative label embedded, cosine goodness against a fixed random reference, θ), each block
  perturbed alone; PhyLL-compatible, prediction by the best total goodness over labels. A
  block's loss depends on its own measurement and weights only, so its perturbed passes are
  digital: no query beyond PhyLL's ``2B`` per block.

Every pass that drives a system goes through :meth:`~phyll.network.PhysicalBlock.measure` under
``torch.no_grad()`` and is counted there; queries per step with ``L`` blocks and batch ``B``:
``global``: :math:`B L + 2 K B (L - 1)`; ``local``: :math:`2 B L`. Perturbed passes run with
the measurement conditioners frozen (eval mode) so that both halves of a pair are conditioned
alike; the unperturbed pass moves their running statistics as in every rule.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phyll.learning.base import (
    HeadInput,
    LearningRule,
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    evaluating,
)
from phyll.learning.local import goodness_per_label, wrong_labels
from phyll.learning.phyll import contrastive_loss, cosine_goodness, random_references
from phyll.learning.readout import train_readout
from phyll.network import Model, PhysicalBlock
from phyll.params import check, param

ZOLoss = Literal["global", "local"]


@dataclass(frozen=True)
class ZOParams(RuleParams):
    """ZO's parameters: the perturbations and the loss they probe."""

    perturbation: float = param(
        0.01, "SPSA perturbation size c: each weight moves by ±c", "weight units"
    )
    n_perturbations: int = param(1, "random directions per step, each an antithetic ± pair")
    loss: ZOLoss = param(
        "global", "global: a readout's cross-entropy, all blocks at once; local: PhyLL's per block"
    )
    theta: float = param(4.0, "θ of PhyLL's contrastive loss (loss=local)")
    head_input: HeadInput = param("last", "the readout reads the last block's output or all")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            math.isfinite(self.perturbation) and self.perturbation > 0,
            f"perturbation must be a finite number > 0, got {self.perturbation}",
        )
        check(
            self.n_perturbations >= 1, f"n_perturbations must be >= 1, got {self.n_perturbations}"
        )
        check(self.theta > 0, f"theta must be > 0, got {self.theta}")


def rademacher(like: Tensor, generator: torch.Generator) -> Tensor:
    """A random ±1 tensor shaped like ``like`` (on its device, from ``generator``)."""
    bits = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return bits.to(like.dtype) * 2 - 1


def spsa_gradient(
    params: list[nn.Parameter],
    loss_of: Callable[[], Tensor],
    size: float,
    n_directions: int,
    generator: torch.Generator,
) -> list[Tensor]:
    """Antithetic SPSA estimate of the gradient of ``loss_of()`` w.r.t. ``params`` (see the
    module docstring); ``loss_of`` is evaluated ``2 · n_directions`` times at perturbed values,
    which are restored exactly afterwards. Call under ``torch.no_grad()``."""
    base = [p.detach().clone() for p in params]
    grads = [torch.zeros_like(p) for p in params]
    try:
        for _ in range(n_directions):
            directions = [rademacher(p, generator) for p in params]
            losses = []
            for sign in (1.0, -1.0):
                for p, b, d in zip(params, base, directions, strict=True):
                    p.copy_(b + (sign * size) * d)
                losses.append(loss_of())
            scale = (losses[0] - losses[1]) / (2 * size * n_directions)
            for g, d in zip(grads, directions, strict=True):
                g.add_(scale * d)
    finally:
        for p, b in zip(params, base, strict=True):
            p.copy_(b)
    return grads


class ZerothOrder(LearningRule):
    """SPSA training of every block's digital weights (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the perturbation
    directions and (``loss=local``) the reference vectors. Parameters (:class:`ZOParams`):
    ``perturbation``, ``n_perturbations``, ``loss``, ``theta``, ``head_input``, ``lr``,
    ``optimizer``.
    """

    name = "zo"
    model_free = True
    Params = ZOParams
    params: ZOParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        if getattr(params, "loss", "global") == "local":
            return ModelSpec(label_channels=True)
        head_input = getattr(params, "head_input", "last")
        return ModelSpec(label_channels=True, head="readout", head_input=head_input)

    def __init__(
        self,
        model: Model,
        params: ZOParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        local = self.params.loss == "local"
        if self.network.n_classes < 2 or (model.head is None) != local:
            need = "no head" if local else "a readout head"
            raise ValueError(f"zo with loss={self.params.loss!r} needs label channels and {need}")
        self.block_params = list(self.network.parameters())
        self.optimizer = self.make_optimizer(self.block_params)
        self.head_optimizer = None if local else self.make_optimizer(model.head.parameters())
        self.references = random_references(self.network, seed) if local else []

    @property
    def prediction(self) -> str:
        return "goodness" if self.params.loss == "local" else "head"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "directions": "Rademacher ±1, antithetic pairs"}

    # ------------------------------------------------------------------ global loss
    def outputs(self, h: Tensor, z_first: Tensor | None) -> list[Tensor]:
        """Block outputs for an embedded input ``h`` whose first measurement is ``z_first``
        (every later block is driven: ``B`` queries each)."""
        outputs = []
        for index, block in enumerate(self.network.blocks):
            z = z_first if index == 0 else (block.measure(h) if block.use_physics else None)
            h = block.digital(z, h)
            outputs.append(h)
        return outputs

    def head_scores(self, outputs: list[Tensor]) -> Tensor:
        """The readout's class scores from block outputs."""
        assert self.model.head is not None
        last = self.params.head_input == "last"
        return self.model.head(outputs[-1] if last else torch.cat(outputs, dim=1))

    def _first_measurement(self, h: Tensor) -> Tensor | None:
        first = self.network.blocks[0]
        return first.measure(h) if first.use_physics else None

    def _global_step(self, x: Tensor, y: Tensor) -> tuple[float, list[Tensor]]:
        assert self.model.head is not None and self.head_optimizer is not None
        h = self.network.embed(x, None)
        with torch.no_grad():  # the unperturbed pass: conditioners follow the measurements
            z_first = self._first_measurement(h)
            outputs = self.outputs(h, z_first)
        last = self.params.head_input == "last"
        features = outputs[-1] if last else torch.cat(outputs, dim=1)
        loss = train_readout(self.model.head, self.head_optimizer, features, y)

        def perturbed_loss() -> Tensor:
            return F.cross_entropy(self.head_scores(self.outputs(h, z_first)), y.long())

        with evaluating(self.model), torch.no_grad():
            grads = self._estimate(self.block_params, perturbed_loss)
        return loss, grads

    # ------------------------------------------------------------------ local loss
    def goodness(self, y: Tensor, block: int) -> Tensor:
        """PhyLL's goodness: cosine similarity with the block's fixed random reference."""
        return cosine_goodness(y, self.references[block])

    def local_loss(self, out: Tensor, block: int, batch: int) -> Tensor:
        """PhyLL's softplus(−θ (G⁺ − G⁻)) of stacked positive and negative outputs."""
        g_pos, g_neg = self.goodness(out[:batch], block), self.goodness(out[batch:], block)
        return contrastive_loss(g_pos, g_neg, self.params.theta)

    def block_loss(
        self, block: PhysicalBlock, z: Tensor | None, h: Tensor, index: int, batch: int
    ) -> Tensor:
        """Block ``index``'s local loss at its current weights, from its measurement ``z``."""
        return self.local_loss(block.digital(z, h), index, batch)

    def _local_step(self, x: Tensor, y: Tensor) -> tuple[float, list[Tensor]]:
        net, batch = self.network, x.shape[0]
        negatives = wrong_labels(y, net.n_classes, self.generator)
        h = torch.cat([net.embed(x, y), net.embed(x, negatives)])
        total: Tensor | None = None
        grads: list[Tensor] = []
        for index, block in enumerate(net.blocks):
            with torch.no_grad():
                z = block.measure(h) if block.use_physics else None  # 2B queries
                out = block.digital(z, h)
                loss = self.local_loss(out, index, batch)

            perturbed_loss = functools.partial(self.block_loss, block, z, h, index, batch)
            with evaluating(block), torch.no_grad():
                grads += self._estimate(list(block.parameters()), perturbed_loss)
            total = loss if total is None else total + loss
            h = out
        assert total is not None
        return float(total) / len(net.blocks), grads

    # ------------------------------------------------------------------ both
    def _estimate(self, params: list[nn.Parameter], loss_of: Callable[[], Tensor]) -> list[Tensor]:
        p = self.params
        return spsa_gradient(params, loss_of, p.perturbation, p.n_perturbations, self.generator)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        step = self._local_step if self.params.loss == "local" else self._global_step
        loss, grads = step(x, y)
        for param_, grad in zip(self.block_params, grads, strict=True):
            param_.grad = grad
        self.optimizer.step()
        return loss

    def class_scores(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks per label (``local``) or the readout's scores."""
        if self.params.loss == "local":
            return goodness_per_label(self.model, x, self.goodness)
        with evaluating(self.model), torch.no_grad():
            h = self.network.embed(x, None)
            return self.head_scores(self.outputs(h, self._first_measurement(h)))

    def predict(self, x: Tensor) -> Tensor:
        return self.class_scores(x).argmax(dim=1)

    def state_dict(self) -> dict[str, Any]:
        state = {**super().state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.head_optimizer is not None:
            state["head_optimizer"] = self.head_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.head_optimizer is not None:
            self.head_optimizer.load_state_dict(state["head_optimizer"])
