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
options here; ``skip``, ``activation`` and ``use_physics`` (the honesty ablation) are options of
:func:`phyll.network.build_network`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import LearningRule
from phyll.learning.readout import LinearReadout
from phyll.network import PhysicalNetwork

Prediction = Literal["goodness", "readout"]


def wrong_labels(labels: Tensor, n_classes: int, generator: torch.Generator) -> Tensor:
    """One wrong label per sample, uniform over the ``n_classes - 1`` others."""
    offset = torch.randint(1, n_classes, labels.shape, generator=generator)
    return (labels.cpu() + offset) % n_classes


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
    """PhyLL's local loss softplus(−θ (G⁺ − G⁻)) on goodness values, batch mean."""
    return F.softplus(-theta * (g_pos - g_neg)).mean()


BlockLoss = Callable[[Tensor, int], Tensor]


def train_blocks_locally(
    network: PhysicalNetwork,
    inputs: Tensor,
    block_loss: BlockLoss,
    optimizers: list[torch.optim.Optimizer],
) -> tuple[float, list[Tensor]]:
    """One local step on every block, first to last, for a stacked batch of embedded inputs.

    Block *l* drives its system once with all rows of ``inputs`` (e.g. positives stacked on
    negatives: ``2B`` queries, no gradient), updates its own weights from
    ``block_loss(outputs, l)`` and passes its detached outputs on. Returns the mean loss over
    blocks and every block's detached outputs (features a readout may reuse at no extra
    physical cost).
    """
    network.train()
    h = inputs
    total, outputs = 0.0, []
    for index, (block, optimizer) in enumerate(zip(network.blocks, optimizers, strict=True)):
        z = None
        if block.use_physics:
            with torch.no_grad():
                z = block.measure(h)  # one physical query per row
        out = block.digital(z, h)
        loss = block_loss(out, index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item()
        h = out.detach()
        outputs.append(h)
    return total / len(network.blocks), outputs


class PhyLL(LearningRule):
    """Physical local learning, supervised (see module docstring).

    Args:
        network: the physical network to train (its label embedding must have ≥ 2 classes).
        seed: seeds the reference vectors and the negative labels.
        theta: sharpness θ of the contrastive loss.
        lr: Adam learning rate of every block's digital weights.
        prediction: ``"goodness"`` (paper) or ``"readout"``.
    """

    name = "phyll"
    model_free = True

    def __init__(
        self,
        network: PhysicalNetwork,
        seed: int = 0,
        theta: float = 4.0,
        lr: float = 1e-2,
        prediction: Prediction = "goodness",
    ) -> None:
        super().__init__(network, seed)
        if network.n_classes < 2:
            raise ValueError("supervised PhyLL needs a network with at least 2 embedded labels")
        if prediction not in ("goodness", "readout"):
            raise ValueError(f"prediction must be 'goodness' or 'readout', got {prediction!r}")
        self.theta = theta
        self.lr = lr
        self.prediction = prediction
        self.references = random_references(network, seed)
        self.optimizers = [torch.optim.Adam(b.parameters(), lr=lr) for b in network.blocks]
        self.readout = (
            LinearReadout(sum(b.out_features for b in network.blocks), network.n_classes, lr)
            if prediction == "readout"
            else None
        )
        if self.readout is not None:  # kept with the blocks by checkpoints and best-epoch weights
            network.add_module("readout", self.readout.to(network.blocks[0].linear.weight.device))

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "theta": self.theta,
            "lr": self.lr,
            "prediction": self.prediction,
            "goodness": "cosine to a fixed random reference per block",
        }

    def local_loss(self, y_pos: Tensor, y_neg: Tensor, reference: Tensor) -> Tensor:
        """softplus(−θ (G⁺ − G⁻)), averaged over the batch."""
        return contrastive_loss(
            cosine_goodness(y_pos, reference), cosine_goodness(y_neg, reference), self.theta
        )

    def train_step(self, x: Tensor, y: Tensor) -> float:
        net = self.network
        batch = x.shape[0]
        negatives = wrong_labels(y, net.n_classes, self.generator).to(y.device)

        def block_loss(out: Tensor, index: int) -> Tensor:  # positives first, then negatives
            return self.local_loss(out[:batch], out[batch:], self.references[index])

        inputs = torch.cat([net.embed(x, y), net.embed(x, negatives)])
        loss, _ = train_blocks_locally(net, inputs, block_loss, self.optimizers)
        if self.readout is not None:
            self.readout.train_step(self._features(x), y)
        return loss

    def _features(self, x: Tensor) -> Tensor:
        """Detached block outputs of a neutral-label pass (readout features)."""
        with torch.no_grad():
            return torch.cat(self.network(self.network.embed(x, None)), dim=1)

    def goodness_per_label(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks for every candidate label: ``[B, n_classes]``."""
        net = self.network
        n = net.n_classes
        labels = torch.arange(n, device=x.device).repeat_interleave(x.shape[0])
        with torch.no_grad():
            outputs = net(net.embed(x.repeat(n, 1), labels))
            score = sum(
                cosine_goodness(o, r) for o, r in zip(outputs, self.references, strict=True)
            )
        return score.view(n, x.shape[0]).T

    def predict(self, x: Tensor) -> Tensor:
        self.network.eval()
        if self.readout is not None:
            return self.readout.predict(self._features(x))
        return self.goodness_per_label(x).argmax(dim=1)

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
        }
        if self.readout is not None:
            state["readout"] = self.readout.state_dict()
            state["readout_optimizer"] = self.readout.optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        if self.readout is not None:
            self.readout.load_state_dict(state["readout"])
            self.readout.optimizer.load_state_dict(state["readout_optimizer"])
