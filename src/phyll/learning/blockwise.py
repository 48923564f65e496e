"""Rules that train block by block: a training step and a prediction, cut where the blocks meet.

A local rule (PhyLL, FF, unsupervised PhyLL) updates each block from that block's own output
only. Its step is therefore three parts, and only the middle one touches a block:

1. :meth:`BlockwiseRule.prepare_step` (the rule, once): what drives the first block, e.g.
   positives stacked on negatives, plus the ``context`` the block losses need (e.g. which
   sample each negative was paired with) and, for a readout, a neutral input;
2. :func:`train_block` (each block in turn): one physical pass of the stacked rows (no
   gradient), the block's digital output, its loss from :meth:`BlockwiseRule.block_objective`,
   one optimizer step; the detached output drives the next block. With a neutral input, the
   block then measures it once more with its updated weights (:func:`neutral_pass`);
3. :meth:`BlockwiseRule.finish_step` (the rule, once): e.g. train the readout on the outputs.

A prediction is likewise :meth:`~BlockwiseRule.prediction_input`, one pass of every block in
eval mode, and :meth:`~BlockwiseRule.scores_from_outputs`.

:meth:`BlockwiseRule.train_step` and :meth:`~BlockwiseRule.predict` chain the parts in this
process. Because block *l* of step *t* needs only block *l − 1*'s output of step *t* and its own
state after step *t − 1*, the same parts can also run on one worker per block, several steps in
flight at once (:mod:`phyll.experiments.pipeline`), and give the same numbers: the objectives
are small picklable objects (module-level functions and tensors) for that reason.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor

from phyll.learning.base import LearningRule, evaluating
from phyll.network import PhysicalBlock

__all__ = [
    "BlockObjective",
    "BlockStep",
    "BlockwiseRule",
    "neutral_pass",
    "train_block",
]


@dataclass
class BlockStep:
    """One training step as the blocks see it (made by :meth:`BlockwiseRule.prepare_step`).

    Attributes:
        inputs: the rows that drive the first block, e.g. ``[positives; negatives]``.
        labels: the batch's labels (a readout trains on them; the blocks never see them).
        context: tensors the block objectives need besides a block's outputs.
        neutral: rows measured again after each block's update, whose outputs a readout
            trains on (None: no such pass).
    """

    inputs: Tensor
    labels: Tensor
    context: dict[str, Tensor] = field(default_factory=dict)
    neutral: Tensor | None = None


class BlockObjective(Protocol):
    """A block's local loss: ``objective(outputs, context) -> scalar``; picklable."""

    def __call__(self, out: Tensor, context: dict[str, Tensor]) -> Tensor: ...


def train_block(
    block: PhysicalBlock,
    h: Tensor,
    objective: BlockObjective,
    context: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
) -> tuple[Tensor, Tensor]:
    """One local step of one block (in train mode) on its input rows ``h``.

    The block drives its system once with every row (no gradient), computes its digital output
    and loss, and takes one optimizer step on its own weights. Returns the loss (detached,
    float64, still on the device: summed over blocks without a host read per block) and the
    detached output, computed before the update, which drives the next block.
    """
    z = None
    if block.use_physics:
        with torch.no_grad():
            z = block.measure(h)  # one physical query per row
    out = block.digital(z, h)
    loss = objective(out, context)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach().double(), out.detach()


def neutral_pass(block: PhysicalBlock, h: Tensor) -> Tensor:
    """The block's output for ``h`` in eval mode, without gradient (a prediction's pass)."""
    with evaluating(block), torch.no_grad():
        return block(h.detach())


class BlockwiseRule(LearningRule):
    """A rule whose step and prediction are cut where the blocks meet (see module docstring).

    Subclasses keep one optimizer per block in :attr:`optimizers` (in block order) and implement
    :meth:`prepare_step`, :meth:`block_objective`, :meth:`prediction_input` and
    :meth:`scores_from_outputs`; :meth:`finish_step` is optional. All of the rule's own
    randomness must come from :attr:`generator` and be drawn in :meth:`prepare_step`.
    """

    optimizers: list[torch.optim.Optimizer]
    #: whether :meth:`finish_step` reads the blocks' training outputs (a pipeline fetches them
    #: from the workers only then)
    needs_outputs: ClassVar[bool] = False

    @abstractmethod
    def prepare_step(self, x: Tensor, y: Tensor) -> BlockStep:
        """The first block's input rows and the context of the step for data ``x``, ``y``."""

    @abstractmethod
    def block_objective(self, index: int) -> BlockObjective:
        """The local loss of block ``index``: a picklable object (no reference to the rule)."""

    def finish_step(
        self, step: BlockStep, outputs: list[Tensor], neutral: list[Tensor] | None
    ) -> None:
        """After every block's update: e.g. a readout step on ``outputs`` (each block's detached
        output of the step) or ``neutral`` (each block's output of ``step.neutral``)."""
        del step, outputs, neutral

    @abstractmethod
    def prediction_input(self, x: Tensor) -> Tensor:
        """The rows a prediction of ``x`` drives through the blocks (in eval mode)."""

    @abstractmethod
    def scores_from_outputs(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        """Class scores ``[B, n_classes]`` of ``x`` from every block's output for
        :meth:`prediction_input`."""

    def predict_from_outputs(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        """Labels of ``x``: the argmax of :meth:`scores_from_outputs`."""
        return self.scores_from_outputs(x, outputs).argmax(dim=1)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        """Every block's local step, first to last, then :meth:`finish_step`; the mean loss."""
        step = self.prepare_step(x, y)
        self.network.train()
        h, total, outputs = step.inputs, None, []
        for index, (block, optimizer) in enumerate(
            zip(self.network.blocks, self.optimizers, strict=True)
        ):
            loss, h = train_block(block, h, self.block_objective(index), step.context, optimizer)
            total = loss if total is None else total + loss
            outputs.append(h)
        neutral = None
        if step.neutral is not None:
            with evaluating(self.model), torch.no_grad():
                neutral = self.network(step.neutral)
        self.finish_step(step, outputs, neutral)
        assert total is not None  # a network has at least one block
        return float(total) / len(self.network.blocks)

    def scores(self, x: Tensor) -> Tensor:
        with evaluating(self.model), torch.no_grad():
            return self.scores_from_outputs(x, self.network(self.prediction_input(x)))
