"""phyll — train deep physical neural networks without backpropagation.

The four parts (DESIGN.md §1): :mod:`phyll.systems` (what the hardware can do),
:mod:`phyll.network` (how physical blocks and digital weights stack), :mod:`phyll.learning`
(how the weights are updated) and :mod:`phyll.experiments` (data, budget, measurement, runs).
"""

from phyll.accounting import Costs, Meter
from phyll.data import load_dataset
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import resume, train
from phyll.learning import make_rule
from phyll.network import PhysicalBlock, PhysicalNetwork, build_network
from phyll.systems import CallableSystem, PhysicalSystem, make_system

__version__ = "0.1.0"

__all__ = [
    "CallableSystem",
    "Costs",
    "Meter",
    "PhysicalBlock",
    "PhysicalNetwork",
    "PhysicalSystem",
    "TrainConfig",
    "build_network",
    "load_dataset",
    "make_rule",
    "make_system",
    "resume",
    "train",
]
