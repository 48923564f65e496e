"""What every learning rule offers the experiment runner (cf. ``torch.optim.Optimizer``).

A rule is built around a :class:`~phyll.network.PhysicalNetwork` it does not own: it updates the
network's trainable weights from batches (:meth:`train_step`) and defines how the trained
network predicts (:meth:`predict`). Rules never reach inside a physical system: they call the
network's blocks, which call the systems.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from phyll.network import PhysicalNetwork


class LearningRule(ABC):
    """Base class: ``train_step(x, y) -> loss`` and ``predict(x) -> labels``."""

    #: registry name (``--rule``)
    name: ClassVar[str]
    #: True when the rule only ever calls the physics forward (no twin, no autograd through it)
    model_free: ClassVar[bool]
    #: True when the rule embeds the label in the input (the network is then built with
    #: ``n_classes`` label channels); False for label-free rules, which get ``n_classes``
    #: as a constructor argument instead (for a readout)
    embeds_labels: ClassVar[bool] = True

    def __init__(self, network: PhysicalNetwork, seed: int = 0) -> None:
        self.network = network
        self.generator = torch.Generator().manual_seed(seed)

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> float:
        """Update the weights from one batch of data ``x`` and labels ``y``; return the loss."""

    @abstractmethod
    def predict(self, x: Tensor) -> Tensor:
        """Predicted labels for a batch of data."""

    def describe(self) -> dict[str, Any]:
        """The rule's resolved hyper-parameters, for the run config."""
        return {"name": self.name, "model_free": self.model_free}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer states and RNG: what a checkpoint needs to continue exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
