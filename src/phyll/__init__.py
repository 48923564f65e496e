"""phyll — train deep physical neural networks without backpropagation.

The four parts (docs/architecture.md): :mod:`phyll.systems` (what the hardware can do),
:mod:`phyll.network` (how physical blocks and digital weights stack), :mod:`phyll.learning`
(how the weights are updated) and :mod:`phyll.experiments` (data, budget, measurement, runs),
with :mod:`phyll.engine`, the one training loop every experiment rides.
"""

from importlib.metadata import PackageNotFoundError, version

from phyll.accounting import Costs, Meter
from phyll.data import load_dataset
from phyll.engine import Callback, Engine, EvalPlan, Splits
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.predict import LoadedRun, load_run
from phyll.experiments.train import resume, train
from phyll.network import Model, PhysicalBlock, PhysicalNetwork, build_network
from phyll.registry import make_rule, make_system
from phyll.systems import CallableSystem, PhysicalSystem

try:
    __version__ = version("phyll")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

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
    "build_experiment",
    "build_network",
    "load_dataset",
    "load_run",
    "make_rule",
    "make_system",
    "resume",
    "train",
]
