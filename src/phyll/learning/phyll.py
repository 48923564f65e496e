r"""PhyLL — physical local learning (Momeni, Rahmani, Malléjac, del Hougne, Fleury, Science 2023).

Model-free, forward-only, layer-local contrastive training of a deep physical network.

For a batch ``(x, y)``:

1. **Positive and negative data.** The label is embedded in the input (one-hot appended in the
   drive range): positive = ``x ⊕ onehot(y)``, negative = ``x ⊕ onehot(y')`` with ``y'`` drawn
   uniformly among the *wrong* labels (never the true one).
2. **One physical pass each, per block.** Block *l* drives its physical system with the positive
   and negative representations (one call of ``2B`` samples, under ``torch.no_grad()``) and
   measures ``z``. This is the entire physical cost of the step: ``2B`` queries per block.
3. **Local loss.** The block's digital output ``y_l = |W_l [z; h]|`` gets a *goodness*
   :math:`G = \cos(y_l, \xi_l)`, the cosine similarity with a fixed random unit reference
   vector :math:`\xi_l` (one per block, drawn once from the rule's seed). The loss is
   :math:`\mathrm{mean}\; \mathrm{softplus}(-\theta (G^+ - G^-))` and only :math:`W_l` is
   updated (Adam). Its gradient needs the measured ``z`` only: no model and no Jacobian of
   the physics, no backward pass through depth.
4. ``y_l`` (detached) drives block *l+1*.

**Prediction** (``prediction="goodness"``, the paper's): embed every candidate label, run the
network, and pick the label with the largest goodness summed over blocks (``C`` physical passes
per sample and block). ``prediction="readout"`` instead trains a linear classifier on the
detached block outputs of a neutral-label pass (one extra physical pass per sample and block
during training, one at test time).

Settings: the paper's formulation (cosine goodness against a per-layer random reference, the
log(1 + exp(-θ·δ)) loss on the positive–negative goodness gap δ, label embedded in the input,
prediction by the best total goodness) is what ``PhyLL()`` does by default, with θ = 4, Adam,
|·| activation and a skip connection of the block input into the digital layer — the choices of
the open reimplementation of the acoustic experiment. ``theta``, ``lr``, ``prediction`` are
parameters here (:class:`PhyLLParams`); ``skip``, ``activation`` and
``use_physics`` (the honesty ablation) are options of :func:`phyll.network.build_network`. The
positive/negative loop, prediction and checkpoint state are shared with FF in
:mod:`phyll.learning.local`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import OptimizerFactory
from phyll.learning.blockwise import BlockObjective
from phyll.learning.local import LocalContrastiveRule, LocalParams, PairedObjective, wrong_labels
from phyll.network import Model, PhysicalNetwork
from phyll.params import param


def cosine_goodness(y: Tensor, reference: Tensor) -> Tensor:
    """Cosine similarity of each row of ``y`` with the reference vector."""
    return F.cosine_similarity(y, reference.expand_as(y), dim=1, eps=1e-8)


def random_references(network: PhysicalNetwork, seed: int) -> list[Tensor]:
    """One fixed random unit reference vector ξ_l per block, drawn from ``seed``."""
    refs = torch.Generator().manual_seed(seed + 7919)
    return [
        F.normalize(torch.randn(b.out_features, generator=refs), dim=0).to(b.linear.weight.device)
        for b in network.blocks
    ]


def contrastive_loss(g_pos: Tensor, g_neg: Tensor, theta: float) -> Tensor:
    """PhyLL's local loss softplus(−θ (G⁺ − G⁻)) on goodness values, batch mean.

    With ``K`` negatives per sample (``g_neg`` of ``K·B`` values, negative ``k`` of sample
    ``b`` at ``k·B + b``) it is log(1 + Σₖ exp(−θ (G⁺ − G⁻ₖ))): the same loss for ``K = 1``,
    and for more the cross-entropy of the positive against its negatives, whose gradient goes
    mostly to the hardest one."""
    if g_neg.shape[0] == g_pos.shape[0]:
        return F.softplus(-theta * (g_pos - g_neg)).mean()
    margins = theta * (g_neg.view(-1, g_pos.shape[0]) - g_pos)  # [K, B]
    zero = torch.zeros_like(margins[:1])
    return torch.logsumexp(torch.cat([zero, margins]), dim=0).mean()


def reference_pair_loss(y_pos: Tensor, y_neg: Tensor, reference: Tensor, theta: float) -> Tensor:
    """PhyLL's block loss: :func:`contrastive_loss` of the cosine goodness against
    ``reference`` of the positive and negative outputs."""
    return contrastive_loss(
        cosine_goodness(y_pos, reference), cosine_goodness(y_neg, reference), theta
    )


@dataclass(frozen=True)
class PhyLLParams(LocalParams):
    """PhyLL's parameters: those of the local rules, with its defaults on images (applied
    where the user gives none; docs/mnist.md: on 15,000 MNIST images, 8 epochs, 3 distinct
    negatives at theta 20 scored 97.8 % validation against 96.6 % for one at theta 4, for
    1.8x the step)."""

    theta: float = param(4.0, "sharpness θ of the contrastive loss", profile={"image": 20.0})
    negatives: int = param(
        1,
        "wrong labels per sample and step, distinct (1: the paper's; each one more pass "
        "through every block; classes − 1: every wrong label)",
        low=1,
        high=10_000,
        profile={"image": 3},
    )


class PhyLL(LocalContrastiveRule):
    """Physical local learning, supervised (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the reference
    vectors. Parameters (:class:`PhyLLParams`): ``theta`` (sharpness of the contrastive loss,
    4; 20 on images), ``negatives`` (1; 3 on images), ``lr``, ``optimizer``, ``prediction``
    (``"goodness"``, the paper's, or ``"readout"``).
    """

    name = "phyll"
    Params = PhyLLParams

    def __init__(
        self,
        model: Model,
        params: LocalParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        self.references = random_references(self.network, seed)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "goodness": "cosine to a fixed random reference per block"}

    def goodness(self, y: Tensor, block: int) -> Tensor:
        """Cosine similarity with the block's fixed random reference vector."""
        return cosine_goodness(y, self.references[block])

    def local_loss(self, y_pos: Tensor, y_neg: Tensor, block: int) -> Tensor:
        """softplus(−θ (G⁺ − G⁻)), averaged over the batch."""
        return reference_pair_loss(y_pos, y_neg, self.references[block], self.params.theta)

    def block_objective(self, index: int) -> BlockObjective:
        return PairedObjective(
            reference_pair_loss, (self.references[index], self.params.theta), self.params.negatives
        )


__all__ = [
    "PhyLL",
    "contrastive_loss",
    "cosine_goodness",
    "random_references",
    "reference_pair_loss",
    "wrong_labels",
]
