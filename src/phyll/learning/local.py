"""Shared machinery of the supervised, model-free, layer-local contrastive rules (PhyLL, FF).

Both rules embed the label in the input, build a positive (true label) and a negative (wrong
label, uniform among the others) copy of every sample, drive each block's physical system once
with both (``2B`` queries per block, under ``torch.no_grad()``), update each block's digital
weights from a local loss on its own output only, and predict the label whose embedding gives
the best goodness summed over blocks (or with a linear readout on detached block outputs). They
differ only in the goodness of a block output and in the local loss: subclasses implement
:meth:`LocalContrastiveRule.goodness` and :meth:`LocalContrastiveRule.local_loss`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.learning.base import LearningRule
from phyll.learning.readout import LinearReadout
from phyll.network import PhysicalNetwork

Prediction = Literal["goodness", "readout"]


def wrong_labels(labels: Tensor, n_classes: int, generator: torch.Generator) -> Tensor:
    """One wrong label per sample, uniform over the ``n_classes - 1`` others."""
    offset = torch.randint(1, n_classes, labels.shape, generator=generator)
    return (labels.cpu() + offset) % n_classes


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


class LocalContrastiveRule(LearningRule):
    """Positive/negative local training of every block; goodness or readout prediction.

    Args:
        network: the physical network to train (its label embedding must have ≥ 2 classes).
        seed: seeds the negative labels (and whatever the subclass draws).
        theta: the loss's θ (sharpness for PhyLL, goodness threshold for FF).
        lr: Adam learning rate of every block's digital weights.
        prediction: ``"goodness"`` (best total goodness over candidate labels) or ``"readout"``.
    """

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
            raise ValueError(
                f"supervised {self.name} needs a network with at least 2 embedded labels"
            )
        if prediction not in ("goodness", "readout"):
            raise ValueError(f"prediction must be 'goodness' or 'readout', got {prediction!r}")
        self.theta = theta
        self.lr = lr
        self.prediction = prediction
        self.optimizers = [torch.optim.Adam(b.parameters(), lr=lr) for b in network.blocks]
        self.readout = (
            LinearReadout(sum(b.out_features for b in network.blocks), network.n_classes, lr)
            if prediction == "readout"
            else None
        )
        if self.readout is not None:  # kept with the blocks by checkpoints and best-epoch weights
            network.add_module("readout", self.readout.to(network.blocks[0].linear.weight.device))

    @abstractmethod
    def goodness(self, y: Tensor, block: int) -> Tensor:
        """Goodness ``[B]`` of the output ``y`` of block number ``block``."""

    @abstractmethod
    def local_loss(self, y_pos: Tensor, y_neg: Tensor, block: int) -> Tensor:
        """Scalar local loss of one block from its positive and negative outputs."""

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "theta": self.theta,
            "lr": self.lr,
            "prediction": self.prediction,
        }

    def train_step(self, x: Tensor, y: Tensor) -> float:
        net = self.network
        batch = x.shape[0]
        negatives = wrong_labels(y, net.n_classes, self.generator).to(y.device)

        def block_loss(out: Tensor, index: int) -> Tensor:  # positives first, then negatives
            return self.local_loss(out[:batch], out[batch:], index)

        inputs = torch.cat([net.embed(x, y), net.embed(x, negatives)])
        loss, _ = train_blocks_locally(net, inputs, block_loss, self.optimizers)
        if self.readout is not None:
            self.readout.train_step(self._features(x), y)
        return loss

    def _features(self, x: Tensor) -> Tensor:
        """Detached block outputs of a neutral-label pass (readout features).

        Run in eval mode: the neutral pass must not move the measurement statistics that the
        positive/negative training passes maintain, and it then matches prediction exactly.
        """
        was_training = self.network.training
        self.network.eval()
        try:
            with torch.no_grad():
                return torch.cat(self.network(self.network.embed(x, None)), dim=1)
        finally:
            self.network.train(was_training)

    def goodness_per_label(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks for every candidate label: ``[B, n_classes]``."""
        net = self.network
        n = net.n_classes
        labels = torch.arange(n, device=x.device).repeat_interleave(x.shape[0])
        with torch.no_grad():
            outputs = net(net.embed(x.repeat(n, 1), labels))
            score = sum(self.goodness(o, i) for i, o in enumerate(outputs))
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
