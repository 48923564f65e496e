"""What every learning rule offers the training engine (cf. ``torch.optim.Optimizer``).

A rule is built around a :class:`~phyll.network.Model` it does not own: it updates the model's
trainable weights from batches (:meth:`LearningRule.train_step`) and defines how the trained
model predicts (:meth:`LearningRule.predict`). Rules drive physical systems only through their
block's measurement call (:meth:`~phyll.network.PhysicalBlock.measure`) and never add modules
to the model: what the model must contain besides the blocks (label channels in the first
block's drive, a classifier head, a readout) the rule *declares* in :meth:`model_spec`, and the
experiment builds it (:func:`model_for`).

Hyper-parameters are declared (:class:`RuleParams` and its subclasses, see
:mod:`phyll.params`); the learning rate and the optimizer are among them, and every rule takes
an optimizer factory (Adam with ``lr`` by default), as ``torch.optim`` users expect.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from phyll.errors import UserError
from phyll.network import LinearHead, Model, PhysicalNetwork
from phyll.params import as_plain, build_params, check, finite_positive, param

OptimizerName = Literal["adam", "adamw", "sgd"]
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
HeadInput = Literal["last", "all"]
#: what a head reads: the last block's output, all of them, or the raw data (the linear control)
HeadSource = Literal["last", "all", "data"]


@dataclass(frozen=True)
class RuleParams:
    """Parameters every rule has: how its digital weights are optimised."""

    lr: float = param(1e-2, "learning rate of the rule's optimizer")
    optimizer: OptimizerName = param("adam", "optimizer of the digital weights (sgd: momentum 0.9)")

    def __post_init__(self) -> None:
        check(finite_positive(self.lr), f"lr must be a finite number > 0, got {self.lr}")


def optimizer_factory(name: OptimizerName, lr: float) -> OptimizerFactory:
    """The optimizer ``name`` with learning rate ``lr``, as a factory of parameters."""
    classes: dict[str, Callable[..., torch.optim.Optimizer]] = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": functools.partial(torch.optim.SGD, momentum=0.9),
    }
    return functools.partial(classes[name], lr=lr)


@dataclass(frozen=True)
class ModelSpec:
    """What a rule needs in the model besides the physical blocks.

    Attributes:
        label_channels: the first block's drive has label channels. Supervised local rules
            write the label there; in-silico backprop and PAT, which classify with a head,
            feed the neutral code, so that they train the same architecture as PhyLL.
            False for label-free rules (unsupervised PhyLL).
        head: ``None``, or ``"classifier"`` (trained end to end through the blocks) or
            ``"readout"`` (trained on detached block outputs).
        head_input: the head reads the ``"last"`` block's output, ``"all"`` of them, or the
            raw ``"data"``.
    """

    label_channels: bool
    head: Literal["classifier", "readout"] | None = None
    head_input: HeadSource = "all"


class NoScoresError(UserError, NotImplementedError):
    """A rule of the user's own defines no class scores (:meth:`LearningRule.scores`)."""


class LearningRule(ABC):
    """Base class: ``train_step(x, y) -> loss`` and ``scores(x) -> class scores``, whose argmax
    is ``predict(x)``.

    Args:
        model: the model to train (built for this rule: see :meth:`model_spec`).
        params: the rule's declared parameters (default: the class defaults).
        seed: seeds the rule's random choices (negatives, corruptions, twin data).
        optimizer: factory of the optimizer of every group of weights the rule updates
            (default: ``params.optimizer`` with ``params.lr``).
        **overrides: parameter values by name, checked against :attr:`Params`.
    """

    #: registry name (``--rule``)
    name: ClassVar[str]
    #: True when the rule only ever calls the physics forward (no twin, no autograd through it)
    model_free: ClassVar[bool]
    #: the rule's parameter dataclass
    Params: ClassVar[type[RuleParams]] = RuleParams
    #: False for rules that never drive the physical systems (trained and tested in silico)
    drives_physics: ClassVar[bool] = True

    def __init__(
        self,
        model: Model,
        params: RuleParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        if not isinstance(model, Model):
            raise TypeError(
                f"{type(self).__name__} trains a phyll.network.Model (network + head), got "
                f"{type(model).__name__}: build one with phyll.learning.make_rule or model_for"
            )
        self.params = self.resolve_params(params, overrides)
        self.model = model
        self.network: PhysicalNetwork = model.network
        self.seed = seed
        #: the rule's random stream, on the model's device (build the rule after moving it)
        self.device = model_device(model)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        factory = optimizer or optimizer_factory(self.params.optimizer, self.params.lr)
        #: every optimizer the rule made through ``make_optimizer`` (what a schedule scales)
        self.optimizers_made: list[torch.optim.Optimizer] = []

        def make_optimizer(parameters: Any) -> torch.optim.Optimizer:
            made = factory(parameters)
            self.optimizers_made.append(made)
            return made

        self.make_optimizer: OptimizerFactory = make_optimizer

    def scale_learning_rate(self, scale: float) -> None:
        """Set every optimizer's learning rate to ``scale`` × the one it was made with (a
        schedule's step; kept in the optimizers' state, so checkpoints carry it)."""
        for made in self.optimizers_made:
            for group in made.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * scale

    @classmethod
    def resolve_params(cls, params: RuleParams | None, overrides: dict[str, Any]) -> RuleParams:
        """``params`` (or the defaults) with ``overrides`` applied and checked."""
        base = as_plain(params) if params is not None else {}
        return build_params(cls.Params, {**base, **overrides}, f"rule {cls.name!r}")

    @classmethod
    @abstractmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        """What the model must contain for this rule with these parameters."""

    def setup(self) -> None:  # noqa: B027  (a hook: most rules need no setup)
        """One-time work before the first training step (e.g. fitting a twin).

        The engine calls it once, under the *setup* cost meter, before training starts; its
        state must be in :meth:`state_dict` so that a resumed run does not repeat it.
        """

    @abstractmethod
    def train_step(self, x: Tensor, y: Tensor) -> float:
        """Update the weights from one batch of data ``x`` and labels ``y``; return the loss."""

    def step_signature(self, x: Tensor, y: Tensor) -> Hashable | None:
        """What fixes the digital work of ``train_step(x, y)``: by default the batch's shapes
        and dtypes. The engine's meter counts the FLOPs of a repeated signature once and reuses
        the count (:class:`~phyll.accounting.Meter`); a rule whose step does other work at
        times (PAT's twin refits) returns None for those steps, which are then counted."""
        return ("train_step", tuple(x.shape), x.dtype, tuple(y.shape), y.dtype)

    def scores(self, x: Tensor) -> Tensor:
        """Class scores ``[B, n_classes]`` of a batch of data, computed in eval mode without
        gradients (the model's mode is restored); their argmax is :meth:`predict`. Every rule
        defines them: ``phyll predict --out`` and ``phyll evaluate`` report them, so a rule
        that does not is refused here rather than given made-up (one-hot) scores."""
        raise NoScoresError(
            f"rule {type(self).__name__} defines no class scores: implement scores(x) -> "
            "[batch, n_classes] (its argmax is the prediction)"
        )

    def predict(self, x: Tensor) -> Tensor:
        """Predicted labels for a batch of data: the argmax of :meth:`scores`."""
        return self.scores(x).argmax(dim=1)

    @property
    def prediction(self) -> str:
        """How the rule predicts (recorded in the run summary)."""
        return "head"

    def describe(self) -> dict[str, Any]:
        """The rule's resolved parameters, for the run config."""
        return {"name": self.name, "model_free": self.model_free, **as_plain(self.params)}

    def state_dict(self) -> dict[str, Any]:
        """Optimizer states and RNG: what a checkpoint needs to continue exactly."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


class evaluating:
    """Put a module in eval mode for the block and restore the mode it had."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __enter__(self) -> nn.Module:
        self.was_training = self.module.training
        self.module.eval()
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's weights (every model has the blocks' digital weights)."""
    return next(model.parameters()).device


def head_features(network: PhysicalNetwork, head_input: HeadSource) -> int:
    """Width of what a head reads: the last block's output, all of them, or the data."""
    if head_input == "data":
        return network.n_features
    if head_input == "last":
        return network.blocks[-1].out_features
    return sum(b.out_features for b in network.blocks)


def model_for(spec: ModelSpec, network: PhysicalNetwork, n_classes: int, seed: int = 0) -> Model:
    """The model a rule with ``spec`` trains: ``network`` plus the head it declares.

    The head's initial weights are drawn from ``seed`` without touching the global RNG.
    """
    if spec.label_channels and network.n_classes < 2:
        raise ValueError("this rule needs a network with at least 2 embedded labels")
    if not spec.label_channels and network.n_classes != 0:
        raise ValueError("this rule needs a network that embeds no labels")
    head = None
    if spec.head is not None:
        if n_classes < 2:
            raise ValueError(f"a classifier head needs at least 2 classes, got {n_classes}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 4099)
            head = LinearHead(head_features(network, spec.head_input), n_classes)
        head.to(model_device(network))
    return Model(network, head)
