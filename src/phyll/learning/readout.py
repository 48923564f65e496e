"""Training a linear readout on frozen (detached) physical features.

Local rules that predict with a readout instead of goodness, and the unsupervised variant that
measures its learned representation with one, train the model's
:class:`~phyll.network.LinearHead` on detached block outputs: only the head gets gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.network import LinearHead


def train_readout(
    head: LinearHead, optimizer: torch.optim.Optimizer, features: Tensor, labels: Tensor
) -> float:
    """One cross-entropy step of ``head`` on detached ``features``; returns the loss."""
    loss = F.cross_entropy(head(features.detach()), labels.long())
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()
