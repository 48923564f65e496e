"""A digital control: multinomial logistic regression on the raw inputs.

``phyll compare``'s ``linear`` control: no physics, no blocks, one linear layer (the model's
head, reading the data itself) trained by cross-entropy. A physical network that does not beat
it computes nothing a linear classifier cannot.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import LearningRule, ModelSpec, OptimizerFactory, RuleParams, evaluating
from phyll.network import Model


class LinearClassifier(LearningRule):
    """Softmax regression on the raw features (layer norm + linear: the model's head)."""

    name = "linear"
    model_free = True
    drives_physics = False

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        return ModelSpec(label_channels=False, head="classifier", head_input="data")

    def __init__(
        self,
        model: Model,
        params: RuleParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        if model.head is None:
            raise ValueError("the linear control needs a model with a head")
        self.head = model.head
        self.optimizer = self.make_optimizer(self.head.parameters())

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.head.train()
        loss = F.cross_entropy(self.head(x), y.long())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def scores(self, x: Tensor) -> Tensor:
        with evaluating(self.model), torch.no_grad():
            return self.head(x)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
