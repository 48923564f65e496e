"""Shared machinery of the supervised, model-free, layer-local contrastive rules (PhyLL, FF).

Both rules embed the label in the input, build a positive (true label) and a negative (wrong
label, uniform among the others) copy of every sample, drive each block's physical system once
with both (``2B`` queries per block, under ``torch.no_grad()``), update each block's digital
weights from a local loss on its own output only, and predict the label whose embedding gives
the best goodness summed over blocks (or with a linear readout on detached block outputs). They
differ only in the goodness of a block output and in the local loss: subclasses implement
:meth:`LocalContrastiveRule.goodness` and :meth:`LocalContrastiveRule.local_loss`, and, to train
on one worker per block (:mod:`phyll.experiments.pipeline`), :meth:`~LocalContrastiveRule.
block_objective` as a :class:`PairedObjective` of module-level functions.

The step is cut where the blocks meet (:class:`~phyll.learning.blockwise.BlockwiseRule`): the
rule draws the negatives and embeds the labels, every block trains on the stacked
``[positives; negatives]``, and a readout, if any, trains last on the outputs of a neutral-label
pass made with the updated weights.
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
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    evaluating,
)
from phyll.learning.blockwise import BlockObjective, BlockStep, BlockwiseRule
from phyll.learning.readout import train_readout
from phyll.network import Model
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


@dataclass(frozen=True)
class PairedObjective:
    """A block's loss on its stacked outputs ``[positives; negatives]`` (``negatives`` wrong
    labels per sample, negative ``k`` of sample ``b`` at row ``(1 + k)·B + b``):
    ``loss(y_pos, y_neg, *args)``, with ``loss`` a module-level function (picklable)."""

    loss: Callable[..., Tensor]
    args: tuple[Any, ...] = ()
    negatives: int = 1

    def __call__(self, out: Tensor, context: dict[str, Tensor]) -> Tensor:
        del context
        batch = out.shape[0] // (1 + self.negatives)
        return self.loss(out[:batch], out[batch:], *self.args)


class LocalContrastiveRule(BlockwiseRule):
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

    def block_objective(self, index: int) -> BlockObjective:
        """:meth:`local_loss` of block ``index`` on the stacked outputs. This default refers
        to the rule itself; PhyLL and FF give a :class:`PairedObjective` instead, which a
        pipeline can send to the block's worker."""
        return PairedObjective(self.local_loss, (index,), self.params.negatives)

    def prepare_step(self, x: Tensor, y: Tensor) -> BlockStep:
        """Negatives drawn, labels embedded: ``[x ⊕ y; x ⊕ y'₁; …; x ⊕ y'_K]`` (``K =
        negatives``); with a readout, the neutral code too."""
        net = self.network
        negatives = distinct_wrong_labels(y, net.n_classes, self.params.negatives, self.generator)
        inputs = torch.cat([net.embed(x, y), *(net.embed(x, wrong) for wrong in negatives)])
        neutral = net.embed(x, None) if self.model.head is not None else None
        return BlockStep(inputs, y, neutral=neutral)

    def finish_step(
        self, step: BlockStep, outputs: list[Tensor], neutral: list[Tensor] | None
    ) -> None:
        """The readout's step on the neutral pass's outputs (the updated blocks in eval mode:
        that pass must not move the measurement statistics, and it matches prediction)."""
        del outputs
        if self.model.head is not None and self.head_optimizer is not None:
            assert neutral is not None
            features = torch.cat(neutral, dim=1)
            train_readout(self.model.head, self.head_optimizer, features, step.labels)

    def goodness_per_label(self, x: Tensor) -> Tensor:
        """Goodness summed over blocks for every candidate label: ``[B, n_classes]``."""
        return goodness_per_label(self.model, x, self.goodness)

    def _every_label(self, x: Tensor) -> Tensor:
        """``x`` embedded with every candidate label, label-major: ``[C·B, ...]``."""
        n = self.network.n_classes
        labels = torch.arange(n, device=x.device).repeat_interleave(x.shape[0])
        return self.network.embed(x.repeat(n, 1), labels)

    def _label_scores(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        score = sum(self.goodness(o, i) for i, o in enumerate(outputs))
        return score.view(self.network.n_classes, x.shape[0]).T

    def prediction_input(self, x: Tensor) -> Tensor:
        """The neutral code (readout), else every candidate label."""
        if self.model.head is not None:
            return self.network.embed(x, None)
        return self._every_label(x)

    def scores_from_outputs(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        """The readout's scores, else the goodness summed over blocks for every label."""
        if self.model.head is not None:
            return self.model.head(torch.cat(outputs, dim=1))
        return self._label_scores(x, outputs)

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
