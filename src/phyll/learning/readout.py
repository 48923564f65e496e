"""Training a linear readout on frozen (detached) physical features.

Local rules that predict with a readout instead of goodness, and the unsupervised variant that
measures its learned representation with one, train the model's
:class:`~phyll.network.LinearHead` on detached block outputs: only the head gets gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import LearningRule, RuleParams, optimizer_factory
from phyll.network import LinearHead
from phyll.params import check, finite_positive, param


@dataclass(frozen=True)
class ReadoutParams(RuleParams):
    """Parameters of a rule that trains a readout head beside its blocks."""

    readout_lr: float | None = param(None, "learning rate of the readout (None: lr)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            self.readout_lr is None or finite_positive(self.readout_lr),
            f"readout_lr must be a finite number > 0, got {self.readout_lr}",
        )


def readout_optimizer(rule: LearningRule, head: LinearHead) -> torch.optim.Optimizer:
    """The optimizer of ``rule``'s readout: the rule's own, or the same kind at ``readout_lr``
    (scaled by a learning-rate schedule like the rule's). ``lr=1e-12`` with a ``readout_lr``
    freezes the blocks: the control of what training them adds."""
    params = rule.params
    assert isinstance(params, ReadoutParams)
    if params.readout_lr is None:
        return rule.make_optimizer(head.parameters())
    made = optimizer_factory(params.optimizer, params.readout_lr)(head.parameters())
    rule.optimizers_made.append(made)
    return made


def train_readout(
    head: LinearHead, optimizer: torch.optim.Optimizer, features: Tensor, labels: Tensor
) -> float:
    """One cross-entropy step of ``head`` on detached ``features``; returns the loss."""
    loss = F.cross_entropy(head(features.detach()), labels.long())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
