"""A run's peak memory, estimated from its resolved configuration before anything is allocated.

:func:`estimate_run` adds up, in bytes, what a run will hold on top of what the process holds
now (the interpreter, torch and the loaded dataset, read from the OS):

* **systems**: every block's system as it declares itself
  (:meth:`~phyll.systems.base.PhysicalSystem.memory_need`: what it keeps), plus, for a moment,
  the largest one built twice over (its construction's temporaries and its design model,
  ``nominal()``, which the engine builds once to count the FLOPs a query would cost);
* **network**: the digital weights of every block and head, four times over (weights,
  gradients, Adam's two moments), and once more for the selected weights kept for the end;
* **dataset**: the training, validation and test splits copied out of the dataset;
* **training**: one step's rows (the batch, and for the local rules one negative pass per
  wrong label) through every block: drives, measurements, digital inputs and outputs, kept
  for the gradients, and the system's workspace;
* **evaluation**: one evaluation batch (512 samples, times the number of classes when the
  prediction scores every label) through every block, without gradients;
* **figures**: the plotting library and one figure at the end.

The resident parts add up; of the passing ones (building a system, a training step, an
evaluation batch, the figure) only the largest counts, since they come one after another.
:func:`check_run` compares the peak with the budget (:mod:`phyll.memory`) and refuses in one
line naming the part that dominates and the option that drives it. ``benchmarks/
memory_estimate.py`` and ``tests/test_memory_estimate.py`` compare the estimate with measured
peaks (docs/reliability.md).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phyll.data import Dataset
from phyll.experiments.config import TrainConfig
from phyll.learning.base import ModelSpec
from phyll.memory import check_fits, format_bytes, resident_bytes
from phyll.systems.base import MemoryNeed, PhysicalSystem

#: samples per evaluation batch (phyll.engine.accuracy, phyll.experiments.predict.BATCH)
EVAL_BATCH = 512
#: float32
FLOAT = 4
#: bytes the plotting library and one figure add at the end of a run (measured: ~45 MB)
FIGURES = 48 * 2**20
#: what an autograd pass keeps per activation value, in copies (input, output, gradient)
TRAIN_COPIES = 3
#: what a pass without gradients holds per activation value at once: each of a block's arrays
#: once (the row already counts its input, measurement, digital input and output)
EVAL_COPIES = 1


@dataclass(frozen=True)
class Part:
    """One part of the estimate: what it is, its bytes, what drives it, how to need less."""

    name: str
    bytes: int
    driver: str
    remedy: str


@dataclass(frozen=True)
class RunMemory:
    """A run's memory estimate: the process now, the parts that stay, the largest passing one."""

    held: int
    resident: tuple[Part, ...]
    passing: tuple[Part, ...]

    @property
    def peak(self) -> int:
        """The estimated peak of the process, in bytes."""
        largest = max((p.bytes for p in self.passing), default=0)
        return self.held + sum(p.bytes for p in self.resident) + largest

    @property
    def dominant(self) -> Part:
        """The largest part (resident or passing)."""
        return max((*self.resident, *self.passing), key=lambda p: p.bytes)


def system_need(
    factory: Callable[..., Any], params: dict[str, Any], n_inputs: int, n_outputs: int
) -> MemoryNeed:
    """What the system ``factory`` declares at these sizes (its own model when it is a
    :class:`PhysicalSystem` class, else the base class's generic one)."""
    cls = factory if isinstance(factory, type) and issubclass(factory, PhysicalSystem) else None
    if cls is None:
        return PhysicalSystem.memory_need(n_inputs, n_outputs)
    resolved = None
    if cls.Params is not None:  # the declared ones; others (n_inputs of a fixed device) are
        declared = {f.name for f in dataclasses.fields(cls.Params)}  # the contract's
        own = {k: v for k, v in params.items() if k in declared}
        resolved = cls.resolve_params(None, own)  # refuses bad values in one line
    return cls.memory_need(n_inputs, n_outputs, resolved)


def estimate_run(
    config: TrainConfig,
    dataset: Dataset,
    spec: ModelSpec,
    rule_params: Any,
    factory: Callable[..., Any],
    n_labels: int,
    overlay: bool,
) -> RunMemory:
    """The memory estimate of a run of ``config`` on ``dataset`` (module docstring), for a
    rule with ``spec`` and ``rule_params``, whose systems ``factory`` builds."""
    blocks, width, measured = config.blocks, config.width, config.measurements
    first_in = dataset.n_features + (0 if overlay else n_labels)
    sizes = [(first_in if b == 0 else width, measured) for b in range(blocks)]
    needs = [system_need(factory, config.system_params, n_in, n_out) for n_in, n_out in sizes]
    if config.pooling is not None:
        window, stride = config.pooling
        side = math.isqrt(measured)
        pooled = ((side - window) // stride + 1) ** 2 if side >= window else measured
    else:
        pooled = measured
    digital_in = [
        (pooled if config.use_physics else 0) + (n_in if config.skip else 0) for n_in, _ in sizes
    ]
    weights = sum(d * width + width for d in digital_in)
    head_in = width * blocks if spec.head_input == "all" else width
    if spec.head is not None:
        weights += (
            dataset.n_features if spec.head_input == "data" else head_in
        ) * dataset.n_classes
    negatives = int(getattr(rule_params, "negatives", 1))
    train_rows = config.batch_size * (1 + negatives if spec.label_channels else 2)
    goodness = spec.label_channels and spec.head is None
    eval_rows = EVAL_BATCH * (dataset.n_classes if goodness else 1)
    per_row = [n_in + n_out + d + width for (n_in, n_out), d in zip(sizes, digital_in, strict=True)]
    train = max(
        FLOAT * TRAIN_COPIES * train_rows * row + need.call(train_rows)
        for row, need in zip(per_row, needs, strict=True)
    )
    train += FLOAT * train_rows * (first_in + dataset.n_features)
    evaluation = max(
        FLOAT * EVAL_COPIES * eval_rows * row + need.call(eval_rows)
        for row, need in zip(per_row, needs, strict=True)
    )
    evaluation += FLOAT * eval_rows * (first_in + dataset.n_features)
    rows = len(dataset.y_train) + len(dataset.y_test)
    data = (FLOAT * dataset.n_features + 8) * rows
    sizes_text = f"--measurements {measured:,}, --width {width:,}, --blocks {blocks}"
    smaller = "lower --measurements, --width or --blocks"
    build = max(2 * n.resident + n.building for n in needs) - max(n.resident for n in needs)
    per_sample = f" and {negatives} negative(s) per sample" if spec.label_channels else ""
    classes = f" × the dataset's {dataset.n_classes:,} classes" if goodness else ""
    return RunMemory(
        resident_bytes(),
        (
            Part("the physical systems", sum(n.resident for n in needs), sizes_text, smaller),
            Part(
                "the digital weights",
                FLOAT * 5 * weights,
                f"--width {width:,}, --measurements {measured:,}",
                "lower --width or --measurements",
            ),
            Part("the data splits", data, f"the dataset's {rows:,} rows", "use less data"),
        ),
        (
            Part("building a physical system", build, sizes_text, smaller),
            Part(
                "a training step",
                train,
                f"--batch-size {config.batch_size}{per_sample}, {sizes_text}",
                "lower --batch-size",
            ),
            Part(
                "an evaluation batch",
                evaluation,
                f"{EVAL_BATCH} samples{classes} through {sizes_text}",
                "predict with a readout (--rule-param prediction=readout) or use fewer classes"
                if goodness
                else smaller,
            ),
            Part("the figures", FIGURES, "the run's figures", "free memory"),
        ),
    )


def check_run(estimate: RunMemory, what: str = "this run") -> None:
    """Refuse, in one line, a run whose estimated peak exceeds the memory budget."""
    part = estimate.dominant
    check_fits(
        estimate.peak,
        f"{what} (largest part: {part.name}, {format_bytes(part.bytes)}, driven by {part.driver})",
        part.remedy,
    )
