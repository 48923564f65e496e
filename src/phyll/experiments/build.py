"""From a configuration (and optional objects) to the pieces a run trains: data, systems, model,
rule, splits and the experiment's own callbacks.

Everything is built from objects or factories: a :class:`~phyll.data.Dataset` object (e.g.
``phyll.data.from_arrays(x, y)``), a system class or factory called as the contract says
(:mod:`phyll.systems.contract`; the older ``(block, n_inputs, n_outputs)`` form still works),
or, by default, what the registry names in the configuration (:mod:`phyll.registry`). A
fixed-size device gets a network sized around it (:mod:`phyll.experiments.sizing`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from phyll.data import Dataset, load_dataset
from phyll.data.augment import RandomShift
from phyll.engine import Augmentation, Callback, Engine, Splits
from phyll.errors import ConfigError
from phyll.experiments.config import TrainConfig
from phyll.experiments.memory_plan import check_run, estimate_run
from phyll.experiments.sizing import SystemSource, block_params, build_systems, system_source
from phyll.learning.base import LearningRule, model_for
from phyll.network import Model, build_network
from phyll.registry import make_system, rule_class
from phyll.systems.base import PhysicalSystem
from phyll.systems.faults import FAULTS, Drift, FaultWrapper, StepPerturbation

#: a system class or factory under the contract, or the older ``(block, n_in, n_out)`` form
SystemFactory = Callable[..., PhysicalSystem]


@dataclass
class Experiment:
    """The built pieces of a run."""

    config: TrainConfig
    dataset: Dataset
    model: Model
    rule: LearningRule
    splits: Splits
    callbacks: list[Callback] = field(default_factory=list)
    augment: Augmentation | None = None
    #: what built each block's system (before its faults): a pipeline rebuilds them with it
    system_source: SystemSource | None = None

    @property
    def systems(self) -> list[PhysicalSystem]:
        return self.model.systems


def registry_systems(config: TrainConfig) -> Callable[[int, int, int], PhysicalSystem]:
    """Block ``i``'s system: ``config.system`` with its parameters, seeded ``1000·seed + i``."""

    def factory(i: int, n_in: int, n_out: int) -> PhysicalSystem:
        return make_system(
            config.system,
            n_in,
            n_out,
            seed=1000 * config.seed + i,
            device=config.device,
            **block_params(config.system_params, i, config.blocks),
        )

    return factory


def build_experiment(
    config: TrainConfig,
    *,
    dataset: Dataset | None = None,
    system_factory: SystemFactory | None = None,
) -> Experiment:
    """Data, one physical system per block (wrapped in ``config.faults``), the model the rule
    declares, the rule and the splits, all seeded from ``config.seed``. The experiment's
    ``config`` has the sizes of a fixed-size device (what a run records)."""
    check_device(config.device)
    cls = rule_class(config.rule)
    params = cls.resolve_params(None, config.resolved_rule_params())
    torch.manual_seed(config.seed)
    if dataset is None:
        dataset = load_dataset(
            config.dataset,
            seed=config.seed,
            data_path=config.data_path,
            label_column=config.label_column,
        )
    if dataset.n_classes < 2:
        raise ConfigError(
            f"dataset {dataset.name!r} has {dataset.n_classes} class: "
            "classification needs 2 or more"
        )
    device = torch.device(config.device)
    spec = cls.model_spec(params)
    n_labels = dataset.n_classes if spec.label_channels else 0
    overlay = label_overlay(dataset, config) if n_labels else None
    source = system_source(config, system_factory)

    def check_memory(sized: TrainConfig) -> None:  # before anything of the run is allocated
        plan = estimate_run(sized, dataset, spec, params, source.factory, n_labels, bool(overlay))
        check_run(plan)

    check_memory(config)
    built, config = build_systems(source, config, dataset, n_labels, bool(overlay), check_memory)
    systems = [with_faults(system, config, i) for i, system in enumerate(built)]
    network = build_network(
        systems,
        dataset.n_features,
        n_labels,
        config.width,
        skip=config.skip,
        use_physics=config.use_physics,
        conditioning=config.conditioning,  # type: ignore[arg-type]
        activation=config.activation,  # type: ignore[arg-type]
        label_overlay=overlay,
        pool=config.pooling,
    ).to(device)
    model = model_for(spec, network, dataset.n_classes, config.seed)
    rule = cls(model, params, seed=config.seed)
    callbacks = fault_callbacks(systems)
    if config.lr_schedule != "constant":
        callbacks.append(LearningRateSchedule(config.lr_schedule, config.epochs))
    return Experiment(
        config,
        dataset,
        model,
        rule,
        make_splits(dataset, config),
        callbacks,
        augmentation(dataset, config),
        source,
    )


def label_overlay(dataset: Dataset, config: TrainConfig) -> tuple[int, int] | None:
    """The image shape to write labels into (``label_encoding="overlay"``), else None."""
    if config.label_encoding != "overlay":
        return None
    if dataset.image_shape is None:
        raise ConfigError(
            f"label_encoding='overlay' writes labels into images, but dataset "
            f"{dataset.name!r} has no image shape; use label_encoding='append'"
        )
    return dataset.image_shape


def augmentation(dataset: Dataset, config: TrainConfig) -> Augmentation | None:
    """The training-batch augmentation ``config`` asks for (None: none)."""
    if not config.augment_shift:
        return None
    if dataset.image_shape is None:
        raise ConfigError(
            f"augment_shift={config.augment_shift} shifts images, but dataset "
            f"{dataset.name!r} has no image shape; use augment_shift=0"
        )
    return RandomShift(dataset.image_shape, config.augment_shift, seed=config.seed)


class LearningRateSchedule(Callback):
    """Cosine decay of every optimizer's learning rate over the epochs (Loshchilov & Hutter,
    ICLR 2017, without restarts): epoch ``e`` of ``E`` (from 0) trains at
    ``lr · ½(1 + cos(π e / E))``. A function of the epoch alone, so a resumed run continues
    the same schedule.

    A run trained longer than planned (``phyll train --resume DIR --epochs N``) continues from
    the rate it reached: from the last epoch trained, at its rate ``s``, the scale decays by
    a new cosine from ``s`` to 0 at epoch ``N`` (a *segment*; the state holds them all). A
    finished run's last rate is near 0, so its extra epochs train at small rates: to train
    longer at full rate, start a run with more epochs.
    """

    key = "lr_schedule"

    def __init__(self, kind: str, epochs: int) -> None:
        if kind != "cosine":
            raise ConfigError(f"unknown learning-rate schedule {kind!r}")
        #: (anchor epoch, scale at the anchor, last epoch): cosine from the scale to 0
        self.segments: list[tuple[int, float, int]] = [(0, 1.0, epochs)]

    def scale(self, epoch: int) -> float:
        anchor, start, end = next(s for s in reversed(self.segments) if s[0] <= epoch)
        return start * 0.5 * (1.0 + math.cos(math.pi * (epoch - anchor) / (end - anchor)))

    def on_fit_start(self, engine: Engine) -> None:
        if self.segments[-1][2] != engine.epochs:  # trained to another total than planned
            if engine.epoch == 0:
                self.segments = [(0, 1.0, engine.epochs)]
            else:
                last = engine.epoch - 1  # the last epoch trained, at the rate reached
                self.segments.append((last, self.scale(last), engine.epochs))
        engine.rule.scale_learning_rate(self.scale(engine.epoch))

    def on_epoch_start(self, engine: Engine) -> None:
        engine.rule.scale_learning_rate(self.scale(engine.epoch))

    def state_dict(self) -> dict[str, Any]:
        return {"segments": [list(s) for s in self.segments]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.segments = [(int(a), float(s), int(e)) for a, s, e in state["segments"]]


def resolve_device(name: str) -> str:
    """``"auto"``: ``"cuda"`` where torch has CUDA, else ``"cpu"`` with a one-line notice on
    stderr; any other name as it is. A run records the resolved device (resume needs it)."""
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    print("phyll: --device auto: CUDA is not available, running on cpu", file=sys.stderr)
    return "cpu"


def check_device(name: str) -> None:
    """Refuse a device torch does not have, in one line."""
    if name == "auto":
        raise ConfigError(
            "device 'auto' is resolved when options are read (resolve_device): pass the "
            "resolved name, 'cpu' or 'cuda'"
        )
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {name}: CUDA is not available on this machine (torch "
            f"{torch.__version__}); use --device cpu"
        )


def make_splits(dataset: Dataset, config: TrainConfig) -> Splits:
    """Training, validation (``val_fraction`` of the training split: stratified, or
    group-disjoint when the data have groups) and test."""
    x, y = dataset.x_train, dataset.y_train
    train_idx, val_idx = dataset.validation_split(config.val_fraction, config.seed)
    device = torch.device(config.device)
    return Splits(
        x[train_idx].to(device),
        y[train_idx].to(device),
        x[val_idx].to(device),
        y[val_idx].to(device),
        dataset.x_test.to(device),
        dataset.y_test.to(device),
    )


def with_faults(system: PhysicalSystem, config: TrainConfig, block: int) -> PhysicalSystem:
    """``system`` wrapped in ``config.faults``, innermost first (random ones seeded per block)."""
    for spec in config.faults:
        cls = FAULTS[spec["name"]]  # an unknown name: one line with the valid ones
        options = {k: v for k, v in spec.items() if k != "name"}
        if "seed" in {f.name for f in dataclasses.fields(cls.Params)}:
            options.setdefault("seed", 1000 * config.seed + block + 11)
        system = cls(system, **options)
    return system


class FaultLog(Callback):
    """Adds every drifting or stepping wrapper's displacement so far to each epoch's record."""

    def __init__(self, wrappers: list[Drift | StepPerturbation]) -> None:
        self.wrappers = wrappers

    def on_epoch_end(self, engine: Engine, record: dict[str, Any]) -> None:
        record["displacement"] = [w.displacement for w in self.wrappers]


class StepSchedule(Callback):
    """Arms step perturbations at the start of their epoch and measures the damage.

    From the next physical query on, the step wrappers change their system; the weights trained
    so far are then tested once, before any retraining (``right_after_step`` in the summary,
    counted as evaluation).
    """

    def __init__(self, steps: list[StepPerturbation], at_epoch: int) -> None:
        self.steps, self.at_epoch = steps, at_epoch
        self.key = f"step_schedule_{at_epoch}"
        self.right_after_step: dict[str, float | None] | None = None

    def on_epoch_start(self, engine: Engine) -> None:
        if engine.epoch == self.at_epoch and self.right_after_step is None:
            for step in self.steps:
                step.schedule(step.queries)
            self.right_after_step = {"test_accuracy": engine.evaluate("test")}

    def on_fit_end(self, engine: Engine, summary: dict[str, Any]) -> None:
        summary["right_after_step"] = self.right_after_step
        summary["applied_at_query"] = [s.applied_at for s in self.steps]

    def state_dict(self) -> dict[str, Any]:
        return {"right_after_step": self.right_after_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.right_after_step = state["right_after_step"]


def fault_callbacks(systems: list[PhysicalSystem]) -> list[Callback]:
    """The callbacks the systems' fault wrappers need: a log of the drift and steps, and the
    arming of the steps at their epoch."""
    moving: list[Drift | StepPerturbation] = []
    steps: dict[int, list[StepPerturbation]] = {}
    for system in systems:
        wrapper: PhysicalSystem = system
        while isinstance(wrapper, FaultWrapper):
            if isinstance(wrapper, Drift | StepPerturbation):
                moving.append(wrapper)
            if isinstance(wrapper, StepPerturbation) and wrapper.at_epoch is not None:
                steps.setdefault(wrapper.at_epoch, []).append(wrapper)
            wrapper = wrapper.inner
    callbacks: list[Callback] = [StepSchedule(group, e) for e, group in sorted(steps.items())]
    return [FaultLog(moving), *callbacks] if moving else callbacks
