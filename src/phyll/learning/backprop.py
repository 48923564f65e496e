r"""In-silico backpropagation: the idealised digital baseline and its reality gap.

Each block's physical system is replaced, for training, by the system's *digital model*
(:meth:`~phyll.systems.base.PhysicalSystem.as_digital_model`: the nominal design, no noise, no
fabrication error, an autograd path). The whole network is then trained end to end with
cross-entropy through the simulator's differentiable model:

    h₀ = x ⊕ neutral label code  →  block 1 (drive map → simulator → conditioning → W₁ → |·|)
    → … → block L → linear head (on the last block's output, or on all block outputs)
    → softmax cross-entropy, Adam on every block's weights and the head.

The label channels of the first block get the network's neutral code (``embed(x, None)``), so
the architecture is exactly the one the local rules train. The rule owns the head (a
:class:`~phyll.learning.readout.LinearReadout`-like layer norm + linear map), not the network.

Two modes (two registry names):

* ``backprop-ideal``: train **and** test on the digital model: what backprop could reach if the
  hardware were its simulator;
* ``backprop-transfer``: train on the digital model, test on the real systems
  (``network.systems``: their noise, fabrication error and any perturbation applied to them),
  the usual "train in silico, deploy on hardware" route, whose loss is the reality gap.

Accounting: the simulator is run by a digital learner, so its forward and backward FLOPs are
the learner's **digital** FLOPs and no physical query is made in training (nor in ideal-mode
tests); transfer-mode prediction queries the real systems. A system without a differentiable
digital model (``differentiable=False``, e.g. a :class:`~phyll.systems.CallableSystem` or a
lab instrument, or no :meth:`nominal`) is refused with :class:`NotDifferentiableError`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phyll.learning.base import LearningRule
from phyll.network import PhysicalBlock, PhysicalNetwork
from phyll.systems.base import PhysicalSystem

HeadInput = Literal["last", "all"]


class NotDifferentiableError(ValueError):
    """The rule needs a differentiable digital model the physical system does not offer."""


class ClassifierHead(nn.Module):
    """Layer norm (no affine) + linear map from block outputs to class logits."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n_features, elementwise_affine=False)
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(self.norm(features))


def head_features(network: PhysicalNetwork, head_input: HeadInput) -> int:
    """Width of what the head reads."""
    if head_input == "last":
        return network.blocks[-1].out_features
    return sum(b.out_features for b in network.blocks)


def block_through(block: PhysicalBlock, system: PhysicalSystem, h: Tensor) -> Tensor:
    """Block output with the physics replaced by ``system`` (gradient flows through it).

    The in-silico path of a block: ``digital(system(drive(h)), h)``. Unlike
    :meth:`PhysicalBlock.forward`, nothing here is wrapped in ``no_grad``.
    """
    z = system(block.drive(h)) if block.use_physics else None
    return block.digital(z, h)


def digital_models(network: PhysicalNetwork, rule: str) -> list[PhysicalSystem]:
    """Each block's differentiable digital model, or a clear refusal."""
    models = []
    for block in network.blocks:
        system = block.system
        if not system.differentiable:
            raise NotDifferentiableError(
                f"rule {rule!r} needs a differentiable simulator, but block {block.index}'s "
                f"system {type(system).__name__} is a black box (differentiable=False); "
                "use a model-free rule (phyll, ff) or pat"
            )
        try:
            models.append(system.as_digital_model())
        except NotImplementedError as exc:
            raise NotDifferentiableError(
                f"rule {rule!r} needs a digital model of block {block.index}'s system: {exc}"
            ) from exc
    return models


class InSilicoBackprop(LearningRule):
    """End-to-end backprop through the simulators' digital models (see module docstring).

    Args:
        network: the physical network (its systems must offer a differentiable nominal model).
        seed: seeds the head's initial weights.
        lr: Adam learning rate of every block and the head.
        mode: ``"ideal"`` (test on the digital model) or ``"transfer"`` (test on the real
            systems).
        head_input: the head reads the ``"last"`` block's output (default) or ``"all"`` block
            outputs concatenated.
    """

    model_free = False
    name: ClassVar[str] = "backprop"

    def __init__(
        self,
        network: PhysicalNetwork,
        seed: int = 0,
        lr: float = 1e-2,
        mode: Literal["ideal", "transfer"] = "ideal",
        head_input: HeadInput = "last",
    ) -> None:
        super().__init__(network, seed)
        if mode not in ("ideal", "transfer"):
            raise ValueError(f"mode must be 'ideal' or 'transfer', got {mode!r}")
        if head_input not in ("last", "all"):
            raise ValueError(f"head_input must be 'last' or 'all', got {head_input!r}")
        if network.n_classes < 2:
            raise ValueError("in-silico backprop needs a network with at least 2 labels")
        self.mode = mode
        self.lr = lr
        self.head_input: HeadInput = head_input
        self.models = digital_models(network, self.name)
        with torch.random.fork_rng():
            torch.manual_seed(seed + 4099)
            self.head = ClassifierHead(head_features(network, head_input), network.n_classes)
        # the head lives with the blocks, so best-epoch weights, checkpoints and model.pt keep it
        network.add_module("head", self.head.to(network.blocks[0].linear.weight.device))
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "lr": self.lr,
            "mode": self.mode,
            "head_input": self.head_input,
            "trained_on": "nominal digital model of each system",
            "tested_on": "nominal digital model" if self.mode == "ideal" else "real systems",
        }

    def logits(self, x: Tensor, systems: list[PhysicalSystem]) -> Tensor:
        """Class scores of data ``x`` with each block's physics given by ``systems``."""
        h = self.network.embed(x, None)
        outputs = []
        for block, system in zip(self.network.blocks, systems, strict=True):
            h = block_through(block, system, h)
            outputs.append(h)
        return self.head(outputs[-1] if self.head_input == "last" else torch.cat(outputs, dim=1))

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.network.train()
        self.head.train()
        loss = F.cross_entropy(self.logits(x, self.models), y.long())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def predict(self, x: Tensor) -> Tensor:
        self.network.eval()
        self.head.eval()
        systems = self.models if self.mode == "ideal" else self.network.systems
        with torch.no_grad():
            return self.logits(x, systems).argmax(dim=1)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])


class IdealBackprop(InSilicoBackprop):
    """Backprop trained and tested on the digital model (``mode="ideal"``)."""

    name = "backprop-ideal"

    def __init__(self, network: PhysicalNetwork, seed: int = 0, **hyper: Any) -> None:
        super().__init__(network, seed, mode="ideal", **hyper)


class TransferBackprop(InSilicoBackprop):
    """Backprop trained on the digital model, tested on the real systems."""

    name = "backprop-transfer"

    def __init__(self, network: PhysicalNetwork, seed: int = 0, **hyper: Any) -> None:
        super().__init__(network, seed, mode="transfer", **hyper)
