"""A linear classifier trained on frozen (detached) physical features.

Used by local rules that predict with a readout instead of goodness, and by the unsupervised
variant to measure the learned representation. Only its own weights get gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinearReadout(nn.Module):
    """Softmax regression on standardised, detached features."""

    def __init__(self, n_features: int, n_classes: int, lr: float = 1e-2) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n_features, elementwise_affine=False)
        self.linear = nn.Linear(n_features, n_classes)
        self.optimizer = torch.optim.Adam(self.linear.parameters(), lr=lr)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(self.norm(features.detach()))

    def train_step(self, features: Tensor, labels: Tensor) -> float:
        loss = F.cross_entropy(self(features), labels.long())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self, features: Tensor) -> Tensor:
        with torch.no_grad():
            return self(features).argmax(dim=1)
