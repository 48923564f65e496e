"""The resolved configuration of one training run (what ``phyll train`` options map to)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.data.registered import DatasetKind
from phyll.errors import ConfigError
from phyll.learning import RULES
from phyll.network import Activation, Conditioning
from phyll.params import check_fields, param, profile_of
from phyll.plugins import Registry
from phyll.registry import rule_class
from phyll.systems.faults import FAULTS
from phyll.systems.registered import SYSTEMS

#: the marker ``config.json`` carries so that phyll never writes into a folder it did not make
FORMAT = "phyll-run/1"

#: what a system changes in its dataset kind's profile (system parameters go under the user's
#: own): on images the optical layer reads 4,096 camera pixels through an amplitude SLM (a real
#: medium product, 5× faster to simulate than a phase SLM at the same validation accuracy);
#: the other systems keep 2,048 measurements (the acoustic room at 4,096 peaks at 7.6 GB)
SYSTEM_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "image": {"optical": {"measurements": 4096, "system_params": {"encoding": "amplitude"}}},
}
#: learning-rate schedules over the epochs: constant, or cosine decay to 0 (per epoch)
LRSchedule = Literal["constant", "cosine"]
#: where the blocks train: all in this process, or each on its own Ray actor (docs/pipeline.md)
Pipeline = Literal["none", "ray"]
#: how the local rules' labels enter the first block: extra drive channels, or in the image
LabelEncoding = Literal["append", "overlay"]


def dataset_kind(dataset: str) -> str:
    """The registered kind of the dataset ``dataset`` names (pooled or not): ``"image"`` or
    ``"tabular"`` (files, data given from Python and unknown names: tabular)."""
    name = dataset.split(":")[0]
    return DATASETS[name].kind if name in DATASETS else "tabular"


def overlay_fits(dataset: str) -> bool:
    """Whether an image dataset's images (pooled by a ``NAME:HxW`` suffix or not) are at least
    as wide as its classes, as a label overlay needs (from its registry entry, without
    loading; an entry that does not give its sizes is assumed to fit)."""
    try:
        name, size = parse_dataset_spec(dataset)
    except DatasetError:
        return True  # an unknown name is the dataset loader's error to report
    entry = DATASETS[name]
    if entry.n_features is None or entry.n_classes is None:
        return True
    width = size[1] if size else math.isqrt(entry.n_features)
    return width >= entry.n_classes


@dataclass(frozen=True)
class Flag:
    """How the command line shows a :class:`TrainConfig` field (read by
    :mod:`phyll.experiments.arguments`, which makes the option).

    Attributes:
        group: the option group (``"task"``, ``"network"``, ``"training"``, ``"pipeline"``,
            ``"evaluation"``, ``"output"``; ``""``: an option one command adds by name).
        name: the option (default: ``--`` and the field's name with dashes; a field that is
            on by default: ``--no-...``).
        metavar: the value's name in the usage.
        repeat: given once per item (``--fault a --fault b``), each parsed on its own.
        help: the option's own help, where the field's does not read as one (a switch that
            turns something off).
        default: the default as the help shows it, where the value says nothing.
    """

    group: str
    name: str = ""
    metavar: str | None = None
    repeat: bool = False
    help: str = ""
    default: str = ""


def option(
    default: Any,
    help: str,
    flag: Flag,
    *,
    names: Registry[Any] | None = None,
    unit: str = "",
    **declared: Any,
) -> Any:
    """A :class:`TrainConfig` field, declared once (:func:`phyll.params.param`): its type is
    the annotation; ``help``, ``unit``, range (``low``, ``high``, ``high_open``) and
    ``profile`` (its default by dataset kind, where the default is None) as a parameter's;
    ``flag``, how the command line shows it; ``names``, the registry of the names it takes
    (``{names}`` in ``help`` lists them)."""
    return param(default, help, unit, metadata={"flag": flag, "names": names}, **declared)


def help_text(f: dataclasses.Field[Any]) -> str:
    """A field's help with the names of its registry filled in (``{names}``)."""
    names = f.metadata.get("names")
    text = f.metadata["help"]
    return text.format(names=", ".join(names.names())) if names is not None else text


def training_help(name: str) -> str:
    """The help of the :class:`TrainConfig` field ``name`` (``phyll list --params``)."""
    return help_text(next(f for f in dataclasses.fields(TrainConfig) if f.name == name))


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder.

    Every field is declared once (:func:`option`): type, default, help, range and choices,
    the defaults by dataset kind (:data:`PROFILES`) and its command-line option. From that one
    declaration come the options of ``phyll train`` and the experiment commands
    (:mod:`phyll.experiments.arguments`), the checks of a configuration made in Python
    (:meth:`__post_init__`) and ``phyll list --params``.

    ``system`` and ``rule`` are registered names (``phyll list``) or ``MODULE:NAME`` import
    paths; ``system_params``/``rule_params`` are checked against their declared parameters
    (``phyll list --params``). ``faults`` wraps every block's system in fault wrappers
    (``[{"name": "drift", "std": 1.0}, {"name": "step", "strength": 10, "at_epoch": 15}]``, see
    :mod:`phyll.systems.faults`).
    """

    # ------------------------------------------------------------------ task
    dataset: str = option(
        "vowels",
        "dataset: {names}, or your own csv:PATH / npz:PATH; image datasets take :HxW to "
        "average-pool the images, e.g. mnist5k:14x14",
        Flag("task", metavar="NAME[:HxW]"),
        names=DATASETS,
    )
    data_path: str | None = option(
        None,
        "file or folder for datasets read from disk (e.g. mnist's IDX files)",
        Flag("task"),
    )
    label_column: str = option(
        "label", "label column of a csv:PATH dataset", Flag("task", metavar="NAME")
    )
    seed: int = option(
        0,
        "one seed: data split, systems, weights and negatives",
        Flag("task"),
        low=0,
        high=2**32 - 1,
    )
    # ------------------------------------------------------------------ physical network
    system: str = option(
        "acoustic",
        "physical system of every block: {names}, or MODULE:NAME (your own PhysicalSystem "
        "class or factory)",
        Flag("network", metavar="NAME"),
        names=SYSTEMS,
    )
    system_params: dict[str, Any] = option(
        {},
        "system parameters (phyll list --params shows them all)",
        Flag("network", "--system-param", "KEY=VALUE", repeat=True,
             help="system parameter, repeatable (phyll list --params shows them all)"),
    )  # fmt: skip
    faults: list[dict[str, Any]] = option(
        [],
        "wrap every block's system in a fault, repeatable, innermost first, e.g. "
        "drift:std=0.5,target=gain ({names}; phyll list --params)",
        Flag("network", "--fault", "NAME[:KEY=VALUE,...]", repeat=True),
        names=FAULTS,
    )
    blocks: int | None = option(
        None, "physical blocks", Flag("network"), low=1, high=1000,
        profile={"tabular": 2, "image": 1},
    )  # fmt: skip
    width: int | None = option(
        None,
        "features of each hidden representation = drive channels of the next system",
        Flag("network"),
        low=1,
        high=2**20,
        profile={"tabular": 64, "image": 256},
    )
    measurements: int | None = option(
        None, "measured channels of every system", Flag("network"), low=1, high=2**22,
        profile={"tabular": 128, "image": 2048},
    )  # fmt: skip
    skip: bool = option(
        True,
        "feed the block input to the digital weights next to the measurement",
        Flag("network"),
    )
    use_physics: bool = option(
        True,
        "use the physical measurement (off: the honesty ablation, the digital path only)",
        Flag("network", "--no-physics",
             help="honesty ablation: remove the physical measurement (digital path only)"),
    )  # fmt: skip
    label_encoding: LabelEncoding | None = option(
        None,
        "labels of the local rules: appended drive channels, or written into the top rows of "
        "the image as the paper's optics does (images only; images narrower than their "
        "classes: append)",
        Flag("network"),
        profile={"tabular": "append", "image": "overlay"},
    )
    pool: int = option(
        1,
        "average the measured image (camera pixels) over N × N windows before the digital "
        "weights; 1: none",
        Flag("network", metavar="N"),
        low=1,
        high=64,
    )
    pool_stride: int | None = option(
        None,
        "stride of the pooling windows",
        Flag("network", metavar="S",
             default="N, non-overlapping; the paper: --pool 3 --pool-stride 2"),
        low=1,
        high=64,
    )  # fmt: skip
    conditioning: Conditioning = option(
        "standardize",
        "how measurements are scaled before the digital weights",
        Flag("network"),
    )
    activation: Activation = option("abs", "activation after the digital weights", Flag("network"))
    # ------------------------------------------------------------------ training
    rule: str = option(
        "phyll",
        "learning rule: {names}, or MODULE:NAME",
        Flag("training", metavar="NAME"),
        names=RULES,
    )
    rule_params: dict[str, Any] = option(
        {},
        "rule parameters (phyll list --params shows them all)",
        Flag("training", "--rule-param", "KEY=VALUE", repeat=True,
             help="rule parameter, repeatable, e.g. theta=4, prediction=readout, "
             "optimizer=sgd (phyll list --params)"),
    )  # fmt: skip
    epochs: int | None = option(
        None, "epochs", Flag("training"), low=1, high=10**6,
        profile={"tabular": 30, "image": 15},
    )  # fmt: skip
    batch_size: int | None = option(
        None, "samples per step", Flag("training"), low=1,
        profile={"tabular": 32, "image": 64},
    )  # fmt: skip
    augment_shift: int | None = option(
        None,
        "shift each training image at random by up to PIXELS pixels each step (0: none)",
        Flag("training", metavar="PIXELS"),
        unit="pixels",
        low=0,
        high=8,
        profile={"tabular": 0, "image": 1},
    )
    lr_schedule: LRSchedule | None = option(
        None,
        "learning rate over the epochs: constant, or a cosine decay to 0 (per epoch)",
        Flag("training"),
        profile={"tabular": "constant", "image": "cosine"},
    )
    val_fraction: float = option(
        0.15,
        "part of the training split held out to pick the best epoch",
        Flag("training"),
        low=0.0,
        high=0.5,
        high_open=True,
    )
    device: str = option(
        "cpu",
        "torch device: cpu, cuda (cuda:N) or auto (cuda if available, else cpu with a notice)",
        Flag("training"),
    )
    # ------------------------------------------------------------------ pipeline
    pipeline: Pipeline = option(
        "none",
        "ray: train each block on its own Ray actor, minibatches pipelined through them "
        "(rules that train block by block, e.g. phyll)",
        Flag("pipeline"),
    )
    pipeline_sync: bool = option(
        False,
        "one actor task at a time, in the sequential order (no overlap): identical to a "
        "sequential run even when blocks share a device",
        Flag("pipeline"),
    )
    pipeline_restarts: int = option(
        2,
        "replace a dead actor and continue from the last checkpoint at most N times (0: stop "
        "at once)",
        Flag("pipeline", metavar="N"),
        low=0,
    )
    ray_address: str | None = option(
        None,
        "the Ray cluster of the actors, e.g. auto or ray://HOST:PORT",
        Flag("pipeline", "--address", "ADDRESS", default="a local Ray instance"),
    )
    # ------------------------------------------------------------------ evaluation
    eval_every: int = option(
        1,
        "evaluate the validation split every N epochs and after the last",
        Flag("evaluation", metavar="N"),
        low=1,
    )
    eval_samples: int | None = option(
        None,
        "evaluate at most N validation samples (a fixed random subset; 0: all)",
        Flag("evaluation", metavar="N"),
        low=0,
        profile={"tabular": 0, "image": 5000},
    )
    test_curve: bool = option(
        False,
        "also measure the test split at every evaluation (for figures; the result is always "
        "the best-validation epoch, tested once at the end)",
        Flag("evaluation"),
    )
    train_eval_samples: int = option(
        0,
        "also measure the accuracy on N training samples at every evaluation",
        Flag("evaluation", metavar="N"),
        low=0,
    )
    # ------------------------------------------------------------------ output
    checkpoint_every: int = option(
        100,
        "checkpoint every STEPS training steps, 0 = at epoch ends only; epoch ends and "
        "Ctrl-C/SIGTERM always checkpoint",
        Flag("output", metavar="STEPS"),
        low=0,
    )
    record: bool = option(
        False,
        "record every drive/measurement pair to RUN_DIR/records (NumPy .npz chunks)",
        Flag(""),
    )

    def __post_init__(self) -> None:
        check_fields(self, "")
        kind = dataset_kind(self.dataset)
        system_profile = dict(SYSTEM_PROFILES.get(kind, {}).get(self.system, {}))
        self.system_params = {**system_profile.pop("system_params", {}), **self.system_params}
        if kind == "image" and not overlay_fits(self.dataset):
            system_profile["label_encoding"] = "append"  # too narrow for a segment per class
        for name, value in {**PROFILES[kind], **system_profile}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        check_fields(self, "")  # the profile's values are declared values too
        if not (self.skip or self.use_physics):
            raise ConfigError("a network without physics needs the skip connection")
        if self.pipeline_sync and self.pipeline == "none":
            raise ConfigError("pipeline_sync (--pipeline-sync) needs a pipeline (--pipeline ray)")
        for fault in self.faults:
            if not isinstance(fault, dict) or "name" not in fault:
                raise ConfigError(f"each fault must be a dict with a 'name', got {fault!r}")

    def resolved_rule_params(self) -> dict[str, Any]:
        """The rule's parameters: the defaults its declaration gives for this dataset kind
        (``profile=`` of its ``Params``, e.g. PhyLL's on images) under the user's own
        ``rule_params``; applied when the rule is built, so that a compare entry of another
        rule does not inherit them, and not recorded as the user's."""
        declared = rule_class(self.rule).Params
        return {**profile_of(declared, dataset_kind(self.dataset)), **self.rule_params}

    @property
    def pooling(self) -> tuple[int, int] | None:
        """``(window, stride)`` of the measurement pooling, None without pooling."""
        return None if self.pool == 1 else (self.pool, self.pool_stride or self.pool)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}")
        return cls(**data)


#: the defaults of the options left unset (None), by dataset kind, from their declarations
#: (``profile``); chosen on *validation* accuracy (docs/your-data.md, "Defaults by dataset
#: kind"): images need a large physical layer (2,048 measurements or more), a wide digital
#: layer, 1-pixel random shifts and a cosine learning-rate decay, and the labels written into
#: the image (the overlay scored 96.3 % validation against 95.7 % for appended label channels,
#: seeds 0–2); the small tabular tasks keep two small blocks and appended labels
PROFILES: dict[str, dict[str, Any]] = {
    kind: profile_of(TrainConfig, kind) for kind in get_args(DatasetKind)
}
