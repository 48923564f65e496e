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
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from phyll.errors import ConfigError
from phyll.learning.base import (
    LearningRule,
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    evaluating,
)
from phyll.learning.readout import train_readout
from phyll.network import Model, PhysicalNetwork
from phyll.params import check, param

Prediction = Literal["goodness", "readout"]


@dataclass(frozen=True)
class LocalParams(RuleParams):
    """Parameters of the supervised local contrastive rules (PhyLL, FF)."""

    theta: float = param(4.0, "θ of the local loss (sharpness for PhyLL, threshold for FF)")
    prediction: Prediction = param(
        "goodness", "goodness: best total goodness over labels (paper); readout: linear readout"
    )
    negatives: int = param(
        1,
        "wrong labels per sample and step, distinct (1: the paper's; each one more pass "
        "through every block; classes − 1: every wrong label)",
        low=1,
        high=10_000,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.theta > 0, f"theta must be > 0, got {self.theta}")
        check(
            isinstance(self.negatives, int) and self.negatives >= 1,
            f"negatives must be an integer >= 1, got {self.negatives!r}",
        )


def wrong_labels(labels: Tensor, n_classes: int, generator: torch.Generator) -> Tensor:
    """One wrong label per sample, uniform over the ``n_classes - 1`` others (drawn on the
    labels' device, by a generator living there)."""
    offset = torch.randint(1, n_classes, labels.shape, generator=generator, device=labels.device)
    return (labels + offset) % n_classes


def distinct_wrong_labels(
    labels: Tensor, n_classes: int, count: int, generator: torch.Generator
) -> Tensor:
    """``count`` distinct wrong labels per sample, ``[count, B]``, uniform over the others."""
    if count == 1:  # one draw per sample: the same stream as a single negative always had
        return wrong_labels(labels, n_classes, generator)[None]
    scores = torch.rand(labels.shape[0], n_classes - 1, generator=generator, device=labels.device)
    offsets = scores.argsort(dim=1)[:, :count] + 1  # a random subset of 1 … C−1
    return ((labels[:, None] + offsets) % n_classes).T


BlockLoss = Callable[[Tensor, int], Tensor]
#: goodness ``[B]`` of a block's outputs, given the block's number
Goodness = Callable[[Tensor, int], Tensor]


def goodness_per_label(model: Model, x: Tensor, goodness: Goodness) -> Tensor:
    """Goodness summed over blocks for every candidate label embedded: ``[B, n_classes]``
    (``n_classes`` physical passes per sample and block; the model's mode is restored)."""
    n = model.network.n_classes
    labels = torch.arange(n, device=x.device).repeat_interleave(x.shape[0])
    with evaluating(model), torch.no_grad():
        outputs = model(x.repeat(n, 1), labels)
        score = sum(goodness(o, i) for i, o in enumerate(outputs))
    return score.view(n, x.shape[0]).T


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
    total: Tensor | None = None  # summed on the device: one host read per step, not per block
    outputs = []
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
        loss = loss.detach().double()
        total = loss if total is None else total + loss
        h = out.detach()
        outputs.append(h)
    assert total is not None  # a network has at least one block
    return float(total) / len(network.blocks), outputs


class LocalContrastiveRule(LearningRule):
    """Positive/negative local training of every block; goodness or readout prediction.

    Args: see :class:`~phyll.learning.base.LearningRule`; parameters: :class:`LocalParams`.
    """

    model_free = True
    Params = LocalParams
    params: LocalParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        readout = getattr(params, "prediction", "goodness") == "readout"
        return ModelSpec(label_channels=True, head="readout" if readout else None)

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
        if self.network.n_classes < 2:
            raise ValueError(
                f"supervised {self.name} needs a network with at least 2 embedded labels"
            )
        if self.params.negatives > self.network.n_classes - 1:
            raise ConfigError(
                f"negatives={self.params.negatives}: there are only "
                f"{self.network.n_classes - 1} wrong labels per sample"
            )
        if (self.params.prediction == "readout") != (model.head is not None):
            raise ValueError(
                f"prediction={self.params.prediction!r} needs a model "
                f"{'with' if self.params.prediction == 'readout' else 'without'} a readout head"
            )
        self.optimizers = [self.make_optimizer(b.parameters()) for b in self.network.blocks]
        self.head_optimizer = self.make_optimizer(model.head.parameters()) if model.head else None

    @property
    def prediction(self) -> str:
        return self.params.prediction

    @abstractmethod
    def goodness(self, y: Tensor, block: int) -> Tensor:
        """Goodness ``[B]`` of the output ``y`` of block number ``block``."""

    @abstractmethod
    def local_loss(self, y_pos: Tensor, y_neg: Tensor, block: int) -> Tensor:
        """Scalar local loss of one block from its positive outputs ``[B, d]`` and its
        negative outputs ``[K·B, d]`` (``K = negatives``: negative ``k`` of sample ``b`` at
        row ``k·B + b``)."""

    def train_step(self, x: Tensor, y: Tensor) -> float:
        net = self.network
        batch = x.shape[0]
        negatives = distinct_wrong_labels(y, net.n_classes, self.params.negatives, self.generator)

        def block_loss(out: Tensor, index: int) -> Tensor:  # positives first, then negatives
            return self.local_loss(out[:batch], out[batch:], index)

        inputs = torch.cat([net.embed(x, y), *(net.embed(x, wrong) for wrong in negatives)])
        loss, _ = train_blocks_locally(net, inputs, block_loss, self.optimizers)
        if self.model.head is not None and self.head_optimizer is not None:
            train_readout(self.model.head, self.head_optimizer, self._features(x), y)
        return loss

    def _features(self, x: Tensor) -> Tensor:
        """Detached block outputs of a neutral-label pass (readout features).

        Run in eval mode: the neutral pass must not move the measurement statistics that the
        positive/negative training passes maintain, and it then matches prediction exactly.
        """
        with evaluating(self.model), torch.no_grad():
            return torch.cat(self.model(x, None), dim=1)

    def goodness_per_label(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks for every candidate label: ``[B, n_classes]``."""
        return goodness_per_label(self.model, x, self.goodness)

    def predict(self, x: Tensor) -> Tensor:
        if self.model.head is not None:
            with evaluating(self.model), torch.no_grad():
                return self.model.head(self._features(x)).argmax(dim=1)
        return self.goodness_per_label(x).argmax(dim=1)

    def state_dict(self) -> dict[str, Any]:
        state = {
            **super().state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
        }
        if self.head_optimizer is not None:
            state["head_optimizer"] = self.head_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        if self.head_optimizer is not None:
            self.head_optimizer.load_state_dict(state["head_optimizer"])
