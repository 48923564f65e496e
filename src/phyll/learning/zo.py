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
evaluated together and averaged into one step. Two losses (``loss``):

* ``local`` (default): PhyLL's contrastive loss of each block (:mod:`phyll.learning.phyll`:
  positive and negative label embedded, cosine goodness against a fixed random reference, θ),
  each block perturbed alone; PhyLL-compatible, prediction by the best total goodness over
  labels. A block's loss depends on its own measurement and weights only, so its perturbed
  passes are digital: no query beyond PhyLL's ``2B`` per block, and K costs digital FLOPs only.
* ``global``: the cross-entropy of a readout head (layer norm + linear, on all block outputs or
  the last one) on the data with the neutral label code. All blocks are perturbed at once and
  every perturbed pass runs the network again: every block after the first is driven anew (its
  drive depends on the weights before it), with all ``2K B`` perturbed drives in one call; the
  first block's measurement depends on no trainable weight and is measured once per step. The
  head is digital and is trained on the unperturbed pass by its exact gradient (as a readout
  is); ``readout_lr`` gives it a rate of its own.

Every pass that drives a system goes through :meth:`~phyll.network.PhysicalBlock.measure` under
``torch.no_grad()`` and is counted there; queries per step with ``L`` blocks and batch ``B``:
``local``: :math:`2 B L`; ``global``: :math:`B L + 2 K B (L - 1)`. The perturbed
pre-activations are computed from what the weights read, :math:`u (W \pm c\Delta W)^\top +
(b \pm c\Delta b)` (exact: linear in the weights); the global perturbed passes condition their
measurements with the running statistics frozen (eval mode), so both halves of a pair are
conditioned alike, and only the unperturbed pass moves them, as in every rule.

Defaults, chosen on validation accuracy (digits, 10 epochs, seeds 0–2,
docs/insitu-training.md): ``loss=local`` with ``n_perturbations=128`` (91.4 %; 64: 89.1 %,
256: 93.0 % at twice the digital work), ``perturbation=0.01`` (0.003: 91.7 %), θ = 4 (2:
90.4 %), ``lr=0.01``; the best global setting found, ``n_perturbations=16, lr=1e-3,
readout_lr=0.01``, reached 90.0 % with 8.5× PhyLL's training queries, and its readout alone on
the random blocks 83.6 %.
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
from phyll.learning.phyll import random_references
from phyll.learning.readout import ReadoutParams, readout_optimizer, train_readout
from phyll.network import Model
from phyll.params import check, param

ZOLoss = Literal["global", "local"]


@dataclass(frozen=True)
class ZOParams(ReadoutParams):
    """ZO's parameters: the perturbations and the loss they probe."""

    perturbation: float = param(
        0.01, "SPSA perturbation size c: each weight moves by ±c", "weight units"
    )
    n_perturbations: int = param(
        128, "random directions per step, each an antithetic ± pair", low=1, high=2**16
    )
    loss: ZOLoss = param(
        "local", "local: PhyLL's loss per block; global: a readout's cross-entropy, all blocks"
    )
    theta: float = param(4.0, "θ of PhyLL's contrastive loss (loss=local)")
    head_input: HeadInput = param("all", "the readout reads all block outputs or the last one")

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


#: one chunk of K' perturbation directions of a linear layer: (ΔW [K', out, in], Δb [K', out])
Direction = tuple[Tensor, Tensor]
#: the losses [2K'] at θ + cΔ_k (first K') and θ − cΔ_k (last K') for one direction per layer
PerturbedLosses = Callable[[list[Direction]], Tensor]
#: directions × weights drawn and evaluated at once, at most (a chunk of directions)
CHUNK_ELEMENTS = 1 << 22


def rademacher(shape: tuple[int, ...], like: Tensor, generator: torch.Generator) -> Tensor:
    """A random ±1 tensor of ``shape`` with ``like``'s dtype and device, from ``generator``."""
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype) * 2 - 1


def perturbed_pre(linear: nn.Linear, u: Tensor, direction: Direction, size: float) -> Tensor:
    """Pre-activations ``u (W ± cΔW_k)ᵀ + (b ± cΔb_k)`` of ``linear`` for K' directions: rows
    ``[:K']`` along +, ``[K':]`` along −; ``u``: one input ``[N, in]`` for all, or one per row
    ``[2K', N, in]``; returns ``[2K', N, out]`` (linear in the weights: exact)."""
    dw, db = direction
    k = dw.shape[0]
    if u.dim() == 2:
        step = torch.einsum("ni,koi->kno", u, dw) + db[:, None, :]
        return linear(u) + size * torch.cat([step, -step])
    plus = torch.einsum("kni,koi->kno", u[:k], dw)
    minus = torch.einsum("kni,koi->kno", u[k:], dw)
    return linear(u) + size * (torch.cat([plus, -minus]) + torch.cat([db, -db])[:, None, :])


def spsa_gradients(
    layers: list[nn.Linear],
    losses_of: PerturbedLosses,
    size: float,
    n_directions: int,
    generator: torch.Generator,
) -> list[Tensor]:
    """Antithetic SPSA estimate of the gradient of a loss w.r.t. every layer's weight and bias
    (see the module docstring): ``[∇W_0, ∇b_0, ∇W_1, ...]``. The directions are drawn and
    evaluated in chunks (``losses_of`` gets one chunk); the weights themselves never move."""
    grads = [torch.zeros_like(t) for layer in layers for t in (layer.weight, layer.bias)]
    n_weights = sum(layer.weight.numel() + layer.bias.numel() for layer in layers)
    per_chunk = max(1, CHUNK_ELEMENTS // n_weights)
    done = 0
    while done < n_directions:
        k = min(per_chunk, n_directions - done)
        directions = [
            (
                rademacher((k, *layer.weight.shape), layer.weight, generator),
                rademacher((k, *layer.bias.shape), layer.bias, generator),
            )
            for layer in layers
        ]
        losses = losses_of(directions)
        scale = (losses[:k] - losses[k:]) / (2 * size * n_directions)
        for i, (dw, db) in enumerate(directions):
            grads[2 * i].add_(torch.einsum("k,koi->oi", scale, dw))
            grads[2 * i + 1].add_(torch.einsum("k,ko->o", scale, db))
        done += k
    return grads


class ZerothOrder(LearningRule):
    """SPSA training of every block's digital weights (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the perturbation
    directions and (``loss=local``) the reference vectors. Parameters (:class:`ZOParams`):
    ``perturbation``, ``n_perturbations``, ``loss``, ``theta``, ``head_input``, ``lr``,
    ``readout_lr`` (``loss=global``), ``optimizer``.
    """

    name = "zo"
    model_free = True
    Params = ZOParams
    params: ZOParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        if getattr(params, "loss", "local") == "local":
            return ModelSpec(label_channels=True)
        head_input = getattr(params, "head_input", "all")
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
        self.head_optimizer = None if local else readout_optimizer(self, model.head)
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
        """The readout's class scores from block outputs (``[..., B, width]`` each)."""
        assert self.model.head is not None
        last = self.params.head_input == "last"
        return self.model.head(outputs[-1] if last else torch.cat(outputs, dim=-1))

    def _first_measurement(self, h: Tensor) -> Tensor | None:
        first = self.network.blocks[0]
        return first.measure(h) if first.use_physics else None

    def global_losses(
        self, h: Tensor, u_first: Tensor, y: Tensor, directions: list[Direction]
    ) -> Tensor:
        """The readout's cross-entropy at every perturbation of every block at once: block
        *l* ≥ 1 drives its system with the ``2K' B`` perturbed drives in one call."""
        outputs, u = [], u_first
        for index, (block, direction) in enumerate(
            zip(self.network.blocks, directions, strict=True)
        ):
            if index > 0:
                rows = h.reshape(-1, h.shape[-1])
                z = block.measure(rows) if block.use_physics else None  # 2K'·B queries
                u = block.digital_input(z, rows).reshape(*h.shape[:2], -1)
            h = block.activate(perturbed_pre(block.linear, u, direction, self.params.perturbation))
            outputs.append(h)
        scores = self.head_scores(outputs)  # [2K', B, classes]
        labels = y.long().repeat(scores.shape[0])
        losses = F.cross_entropy(scores.flatten(0, 1), labels, reduction="none")
        return losses.view(scores.shape[:2]).mean(dim=1)

    def _global_step(self, x: Tensor, y: Tensor) -> tuple[float, list[Tensor]]:
        assert self.model.head is not None and self.head_optimizer is not None
        h = self.network.embed(x, None)
        with torch.no_grad():  # the unperturbed pass: conditioners follow the measurements
            z_first = self._first_measurement(h)
            outputs = self.outputs(h, z_first)
        last = self.params.head_input == "last"
        features = outputs[-1] if last else torch.cat(outputs, dim=1)
        loss = train_readout(self.model.head, self.head_optimizer, features, y)
        with evaluating(self.model), torch.no_grad():  # perturbed passes: conditioners frozen
            u_first = self.network.blocks[0].digital_input(z_first, h)
            losses_of = functools.partial(self.global_losses, h, u_first, y)
            grads = self._estimate([b.linear for b in self.network.blocks], losses_of)
        return loss, grads

    # ------------------------------------------------------------------ local loss
    def goodness(self, y: Tensor, block: int) -> Tensor:
        """PhyLL's goodness: cosine similarity with the block's fixed random reference
        (over the last dimension of ``y``)."""
        reference = self.references[block]
        return F.cosine_similarity(y, reference.expand_as(y), dim=-1, eps=1e-8)

    def local_losses(self, out: Tensor, block: int, batch: int) -> Tensor:
        """PhyLL's softplus(−θ (G⁺ − G⁻)), batch mean, of outputs ``[..., 2B, width]`` (the
        positives, then the negatives): one loss per leading index."""
        gap = self.goodness(out[..., :batch, :], block) - self.goodness(out[..., batch:, :], block)
        return F.softplus(-self.params.theta * gap).mean(dim=-1)

    def block_losses(
        self, index: int, u: Tensor, batch: int, directions: list[Direction]
    ) -> Tensor:
        """Block ``index``'s local loss at each perturbation of its weights, from what its
        weights read, ``u``: digital work only."""
        block = self.network.blocks[index]
        pre = perturbed_pre(block.linear, u, directions[0], self.params.perturbation)
        return self.local_losses(block.activate(pre), index, batch)

    def _local_step(self, x: Tensor, y: Tensor) -> tuple[float, list[Tensor]]:
        net, batch = self.network, x.shape[0]
        negatives = wrong_labels(y, net.n_classes, self.generator)
        h = torch.cat([net.embed(x, y), net.embed(x, negatives)])
        total: Tensor | None = None
        grads: list[Tensor] = []
        for index, block in enumerate(net.blocks):
            with torch.no_grad():
                z = block.measure(h) if block.use_physics else None  # 2B queries
                u = block.digital_input(z, h)  # conditioners follow the measurements
                out = block.activate(block.linear(u))
                loss = self.local_losses(out, index, batch)

                losses_of = functools.partial(self.block_losses, index, u, batch)
                grads += self._estimate([block.linear], losses_of)  # digital: no query
            total = loss if total is None else total + loss
            h = out
        assert total is not None
        return float(total) / len(net.blocks), grads

    # ------------------------------------------------------------------ both
    def _estimate(self, layers: list[nn.Linear], losses_of: PerturbedLosses) -> list[Tensor]:
        p = self.params
        return spsa_gradients(layers, losses_of, p.perturbation, p.n_perturbations, self.generator)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        step = self._local_step if self.params.loss == "local" else self._global_step
        loss, grads = step(x, y)
        for param_, grad in zip(self.block_params, grads, strict=True):
            param_.grad = grad
        self.optimizer.step()
        return loss

    def scores(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks per label (``local``) or the readout's scores."""
        if self.params.loss == "local":
            return goodness_per_label(self.model, x, self.goodness)
        with evaluating(self.model), torch.no_grad():
            h = self.network.embed(x, None)
            return self.head_scores(self.outputs(h, self._first_measurement(h)))

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
