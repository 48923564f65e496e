"""phyll — train deep physical neural networks without backpropagation.

The four parts (docs/architecture.md): :mod:`phyll.systems` (what the hardware can do),
:mod:`phyll.network` (how physical blocks and digital weights stack), :mod:`phyll.learning`
(how the weights are updated) and :mod:`phyll.experiments` (data, budget, measurement, runs),
with :mod:`phyll.engine`, the one training loop every experiment rides.

The names below are imported on first use (PEP 562), so that ``import phyll.systems`` on a lab
machine, or ``phyll --version``, does not load the experiments, plotting or data libraries.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("phyll")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

#: public name → the module that defines it
_LAZY = {
    "CallableSystem": "phyll.systems",
    "PhysicalSystem": "phyll.systems",
    "Callback": "phyll.engine",
    "Engine": "phyll.engine",
    "EvalPlan": "phyll.engine",
    "Splits": "phyll.engine",
    "Costs": "phyll.accounting",
    "Meter": "phyll.accounting",
    "LoadedRun": "phyll.experiments.predict",
    "load_run": "phyll.experiments.predict",
    "Model": "phyll.network",
    "PhysicalBlock": "phyll.network",
    "PhysicalNetwork": "phyll.network",
    "build_network": "phyll.network",
    "TrainConfig": "phyll.experiments.config",
    "UserError": "phyll.errors",
    "build_experiment": "phyll.experiments.build",
    "load_dataset": "phyll.data",
    "make_rule": "phyll.registry",
    "make_system": "phyll.registry",
    "resume": "phyll.experiments.train",
    "train": "phyll.experiments.train",
}

__all__ = [
    "CallableSystem",
    "Callback",
    "Costs",
    "Engine",
    "EvalPlan",
    "LoadedRun",
    "Meter",
    "Model",
    "PhysicalBlock",
    "PhysicalNetwork",
    "PhysicalSystem",
    "Splits",
    "TrainConfig",
    "UserError",
    "build_experiment",
    "build_network",
    "load_dataset",
    "load_run",
    "make_rule",
    "make_system",
    "resume",
    "train",
]

if TYPE_CHECKING:
    from phyll.accounting import Costs, Meter
    from phyll.data import load_dataset
    from phyll.engine import Callback, Engine, EvalPlan, Splits
    from phyll.errors import UserError
    from phyll.experiments.build import build_experiment
    from phyll.experiments.config import TrainConfig
    from phyll.experiments.predict import LoadedRun, load_run
    from phyll.experiments.train import resume, train
    from phyll.network import Model, PhysicalBlock, PhysicalNetwork, build_network
    from phyll.registry import make_rule, make_system
    from phyll.systems import CallableSystem, PhysicalSystem


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'phyll' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
