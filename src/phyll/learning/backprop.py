r"""In-silico backpropagation: the idealised digital baseline and its reality gap.

Each block's physical system is replaced, for training, by the system's *digital model*
(:meth:`~phyll.systems.base.PhysicalSystem.as_digital_model`: the nominal design, no noise, no
fabrication error, an autograd path). The whole network is then trained end to end with
cross-entropy through the simulator's differentiable model:

    h₀ = x ⊕ neutral label code  →  block 1 (drive map → simulator → conditioning → W₁ → |·|)
    → … → block L → linear head (on the last block's output, or on all block outputs)
    → softmax cross-entropy, Adam on every block's weights and the head.

The label channels of the first block get the network's neutral code (``embed(x, None)``), so
the architecture is exactly the one the local rules train. The head (a
:class:`~phyll.network.LinearHead`: layer norm + linear map) is part of the model, which the
rule declares (:meth:`InSilicoBackprop.model_spec`) and the experiment builds.

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

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.errors import UserError
from phyll.learning.base import (
    HeadInput,
    LearningRule,
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    evaluating,
)
from phyll.network import Model, PhysicalBlock, PhysicalNetwork
from phyll.params import param
from phyll.systems.base import PhysicalSystem


class NotDifferentiableError(UserError, ValueError):
    """The rule needs a differentiable digital model the physical system does not offer."""


@dataclass(frozen=True)
class HeadParams(RuleParams):
    """Parameters of the rules that classify with a head trained end to end (backprop, PAT)."""

    head_input: HeadInput = param("last", "the head reads the last block's output or all")


def block_in_silico(block: PhysicalBlock, digital_model: PhysicalSystem, h: Tensor) -> Tensor:
    """Block output with the physics replaced by its digital model (gradient flows through it).

    The in-silico path of a block: ``digital(model(drive(h)), h)``; the physical system itself
    is not called. Unlike :meth:`PhysicalBlock.forward`, nothing is wrapped in ``no_grad``.
    """
    z = digital_model(block.drive(h)) if block.use_physics else None
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


class HeadRule(LearningRule):
    """Shared by backprop and PAT: a classifier head on the blocks, one optimizer for all."""

    params: HeadParams
    Params = HeadParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        head_input = getattr(params, "head_input", "last")
        return ModelSpec(label_channels=True, head="classifier", head_input=head_input)

    def __init__(
        self,
        model: Model,
        params: HeadParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        if self.network.n_classes < 2 or model.head is None:
            raise ValueError(f"{self.name} needs a model with label channels and a head")
        self.head = model.head
        self.optimizer = self.make_optimizer(model.parameters())

    def head_scores(self, outputs: list[Tensor]) -> Tensor:
        """Class scores from the blocks' outputs (the last one or all, as declared)."""
        last = self.params.head_input == "last"
        return self.head(outputs[-1] if last else torch.cat(outputs, dim=1))

    def step_on(self, loss: Tensor) -> float:
        """One optimizer step on ``loss``."""
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])


class InSilicoBackprop(HeadRule):
    """End-to-end backprop through the simulators' digital models (see module docstring).

    Parameters (:class:`HeadParams`): ``lr``, ``optimizer``, ``head_input``. The mode is the
    class: :class:`IdealBackprop` tests on the digital model, :class:`TransferBackprop` on the
    real systems.
    """

    model_free = False
    name: ClassVar[str] = "backprop"
    mode: ClassVar[Literal["ideal", "transfer"]] = "ideal"

    def __init__(
        self,
        model: Model,
        params: HeadParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        self.models = digital_models(self.network, self.name)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "mode": self.mode,
            "trained_on": "nominal digital model of each system",
            "tested_on": "nominal digital model" if self.mode == "ideal" else "real systems",
        }

    def logits(self, x: Tensor, in_silico: bool) -> Tensor:
        """Class scores of data ``x``, through the digital models or the real systems."""
        h = self.network.embed(x, None)
        outputs = []
        for block, model in zip(self.network.blocks, self.models, strict=True):
            h = block_in_silico(block, model, h) if in_silico else block(h)
            outputs.append(h)
        return self.head_scores(outputs)

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        return self.step_on(F.cross_entropy(self.logits(x, in_silico=True), y.long()))

    def scores(self, x: Tensor) -> Tensor:
        """The head's logits, through the digital models (ideal) or the real systems."""
        with evaluating(self.model), torch.no_grad():
            return self.logits(x, in_silico=self.mode == "ideal")


class IdealBackprop(InSilicoBackprop):
    """Backprop trained and tested on the digital model."""

    name = "backprop-ideal"
    mode = "ideal"
    drives_physics = False


class TransferBackprop(InSilicoBackprop):
    """Backprop trained on the digital model, tested on the real systems."""

    name = "backprop-transfer"
    mode = "transfer"
