"""The resolved configuration of one training run (what ``phyll train`` options map to)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
from dataclasses import dataclass, field
from typing import Any, Union, get_args, get_origin, get_type_hints

from phyll.data import DATASETS, DatasetError, parse_dataset_spec
from phyll.errors import ConfigError

#: the marker ``config.json`` carries so that phyll never writes into a folder it did not make
FORMAT = "phyll-run/1"

#: the defaults of the options left unset (None), by dataset kind; chosen on *validation*
#: accuracy (docs/your-data.md, "Defaults by dataset kind"): images need a large physical layer
#: (2,048 measurements or more), a wide digital layer, 1-pixel random shifts and
#: a cosine learning-rate decay, and the labels written into the image (the overlay scored
#: 96.3 % validation against 95.7 % for appended label channels, seeds 0–2); the small
#: tabular tasks keep two small blocks and appended labels
PROFILES: dict[str, dict[str, Any]] = {
    "tabular": {
        "epochs": 30,
        "batch_size": 32,
        "blocks": 2,
        "width": 64,
        "measurements": 128,
        "augment_shift": 0,
        "lr_schedule": "constant",
        "label_encoding": "append",
        "eval_samples": 0,
    },
    "image": {
        "epochs": 15,
        "batch_size": 64,
        "blocks": 1,
        "width": 256,
        "measurements": 2048,
        "augment_shift": 1,
        "lr_schedule": "cosine",
        "label_encoding": "overlay",
        "eval_samples": 5000,
    },
}
#: what a system changes in its dataset kind's profile (system parameters go under the user's
#: own): on images the optical layer reads 4,096 camera pixels through an amplitude SLM (a real
#: medium product, 5× faster to simulate than a phase SLM at the same validation accuracy);
#: the other systems keep 2,048 measurements (the acoustic room at 4,096 peaks at 7.6 GB)
SYSTEM_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "image": {"optical": {"measurements": 4096, "system_params": {"encoding": "amplitude"}}},
}
#: what a dataset kind changes in a rule's own parameter defaults (the user's ``rule_params``
#: go over them; applied when the rule is built, so that a compare entry of another rule does
#: not inherit them): on images PhyLL contrasts each positive with 3 distinct wrong labels at
#: a sharper margin (theta 20), chosen on validation (docs/mnist.md: on 15,000 MNIST images,
#: 8 epochs, 97.8 % validation against 96.6 % for one negative at theta 4, for 1.8x the step)
RULE_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "image": {"phyll": {"negatives": 3, "theta": 20.0}},
}
LR_SCHEDULES = ("constant", "cosine")
#: where the blocks train: all in this process, or each on its own Ray actor (docs/pipeline.md)
PIPELINES = ("none", "ray")
#: how the local rules' labels enter the first block: extra drive channels, or in the image
LABEL_ENCODINGS = ("append", "overlay")


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


def matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is of the declared type ``annotation`` (a bool is not a number; an
    int is a float; containers are checked on their kind)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, dict):
        return isinstance(value, origin)
    return True


def check_types(config: Any) -> None:
    """Refuse, naming the field, a value not of its declared type: the Python API checks what
    the command line's parsers check (``TrainConfig(seed=1.5)`` is one line, not a failure
    deep inside a random generator)."""
    for name, annotation in get_type_hints(type(config)).items():
        value = getattr(config, name)
        if not matches(value, annotation):
            wanted = str(annotation).replace("typing.", "").replace("<class '", "")
            wanted = wanted.replace("'>", "")
            raise ConfigError(
                f"TrainConfig.{name} must be of type {wanted}, got {type(value).__name__} "
                f"{value!r:.60}"
            )


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``config.json`` in the run folder.

    Architecture: ``blocks`` physical blocks; each system has ``measurements`` output channels
    and hidden representations have ``width`` features (= drive channels of the next system).
    ``system`` and ``rule`` are registered names (``phyll list``) or ``MODULE:NAME`` import
    paths; ``system_params``/``rule_params`` are checked against their declared parameters
    (``phyll list --params``). ``faults`` wraps every block's system in fault wrappers
    (``[{"name": "drift", "std": 1.0}, {"name": "step", "strength": 10, "at_epoch": 15}]``, see
    :mod:`phyll.systems.faults`).
    """

    dataset: str = "vowels"
    system: str = "acoustic"
    rule: str = "phyll"
    seed: int = 0
    #: None: the dataset kind's default (``PROFILES``), resolved when the config is made
    epochs: int | None = None
    batch_size: int | None = None
    blocks: int | None = None
    width: int | None = None
    measurements: int | None = None
    #: random translation of training images by up to this many pixels, per sample (0: none)
    augment_shift: int | None = None
    #: learning-rate schedule over the epochs: constant, or cosine decay to 0 (per epoch)
    lr_schedule: str | None = None
    skip: bool = True
    use_physics: bool = True
    #: "append": the label one-hot as extra drive channels; "overlay": written into the top
    #: rows of the image (images only; see phyll.network.overlay_labels); None: the profile's
    label_encoding: str | None = None
    #: average the measured image over pool × pool pixels (1: no pooling) every pool_stride
    #: pixels (None: pool, non-overlapping) before the digital weights; image measurements only
    pool: int = 1
    pool_stride: int | None = None
    conditioning: str = "standardize"
    activation: str = "abs"
    val_fraction: float = 0.15
    #: evaluate the validation split every this many epochs (and after the last one)
    eval_every: int = 1
    #: evaluate at most this many validation samples per evaluation (a fixed random subset;
    #: 0: all; None: the profile's, all for tabular data, 5,000 for images: full MNIST's 9,000
    #: validation images through every label cost as much as a third of a training epoch)
    eval_samples: int | None = None
    #: also measure the test split at every evaluation (figures); default: once, at the end
    test_curve: bool = False
    #: also measure the accuracy on this many training samples at every evaluation
    train_eval_samples: int = 0
    data_path: str | None = None
    #: the label column of a ``csv:PATH`` dataset
    label_column: str = "label"
    device: str = "cpu"
    #: write a checkpoint every this many training steps (0: at epoch ends only); epoch ends
    #: and Ctrl-C/SIGTERM always checkpoint
    checkpoint_every: int = 100
    #: record every drive/measurement pair to DIR/records (see phyll.systems.recording)
    record: bool = False
    faults: list[dict[str, Any]] = field(default_factory=list)
    #: "ray": every block on its own Ray actor, minibatches pipelined (docs/pipeline.md)
    pipeline: str = "none"
    #: with a pipeline: one task at a time in the sequential order (no overlap)
    pipeline_sync: bool = False
    #: with a pipeline: dead actors replaced (the run continuing from its last checkpoint) at
    #: most this many times before the run stops
    pipeline_restarts: int = 2
    #: with a pipeline: the Ray cluster of the actors (None: a local Ray instance)
    ray_address: str | None = None
    system_params: dict[str, Any] = field(default_factory=dict)
    rule_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_types(self)
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in 0..{2**32 - 1:,}, got {self.seed!r}")
        kind = dataset_kind(self.dataset)
        system_profile = dict(SYSTEM_PROFILES.get(kind, {}).get(self.system, {}))
        self.system_params = {**system_profile.pop("system_params", {}), **self.system_params}
        if kind == "image" and not overlay_fits(self.dataset):
            system_profile["label_encoding"] = "append"  # too narrow for a segment per class
        for name, value in {**PROFILES[kind], **system_profile}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("epochs", "batch_size", "blocks", "width", "measurements", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        limits = (("width", 2**20), ("measurements", 2**22), ("blocks", 1000), ("epochs", 10**6))
        for name, limit in limits:
            if getattr(self, name) > limit:
                raise ConfigError(f"{name} must be at most {limit:,}, got {getattr(self, name):,}")
        if isinstance(self.augment_shift, bool) or not (
            isinstance(self.augment_shift, int) and 0 <= self.augment_shift <= 8
        ):
            raise ConfigError(
                f"augment_shift must be an integer in 0..8, got {self.augment_shift!r}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
            )
        if self.label_encoding not in LABEL_ENCODINGS:
            raise ConfigError(
                f"label_encoding must be one of {', '.join(LABEL_ENCODINGS)}, "
                f"got {self.label_encoding!r}"
            )
        for name in ("pool", "pool_stride"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64
            ):
                raise ConfigError(f"{name} must be an integer in 1..64, got {value!r}")
        if not (math.isfinite(self.val_fraction) and 0.0 <= self.val_fraction < 0.5):
            raise ConfigError(f"val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if isinstance(self.eval_samples, bool) or not (
            isinstance(self.eval_samples, int) and self.eval_samples >= 0
        ):
            raise ConfigError(
                f"eval_samples must be an integer >= 0 (0: all), got {self.eval_samples!r}"
            )
        if self.train_eval_samples < 0:
            raise ConfigError(f"train_eval_samples must be >= 0, got {self.train_eval_samples}")
        if not (self.skip or self.use_physics):
            raise ConfigError("a network without physics needs the skip connection")
        if self.pipeline not in PIPELINES:
            raise ConfigError(
                f"pipeline must be one of {', '.join(PIPELINES)}, got {self.pipeline!r}"
            )
        if self.pipeline_sync and self.pipeline == "none":
            raise ConfigError("pipeline_sync (--pipeline-sync) needs a pipeline (--pipeline ray)")
        if isinstance(self.pipeline_restarts, bool) or not (
            isinstance(self.pipeline_restarts, int) and self.pipeline_restarts >= 0
        ):
            raise ConfigError(
                f"pipeline_restarts must be an integer >= 0, got {self.pipeline_restarts!r}"
            )
        for fault in self.faults:
            if not isinstance(fault, dict) or "name" not in fault:
                raise ConfigError(f"each fault must be a dict with a 'name', got {fault!r}")

    def resolved_rule_params(self) -> dict[str, Any]:
        """The rule's parameters: the dataset kind's defaults for this rule
        (``RULE_PROFILES``) under the user's own ``rule_params``."""
        profile = RULE_PROFILES.get(dataset_kind(self.dataset), {}).get(self.rule, {})
        return {**profile, **self.rule_params}

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
