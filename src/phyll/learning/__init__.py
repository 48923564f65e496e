"""Learning rules: how the trainable weights of a physical network are updated.

``make_rule(name, network, seed=..., **hyper)`` builds a registered rule; :data:`RULES` lists
them. One module per rule.
"""

from __future__ import annotations

from typing import Any

from phyll.learning.backprop import IdealBackprop, TransferBackprop
from phyll.learning.base import LearningRule
from phyll.learning.ff import ForwardForward
from phyll.learning.pat import PhysicsAwareTraining
from phyll.learning.phyll import PhyLL
from phyll.network import PhysicalNetwork

RULES: dict[str, type[LearningRule]] = {
    "phyll": PhyLL,
    "ff": ForwardForward,
    "pat": PhysicsAwareTraining,
    "backprop-ideal": IdealBackprop,
    "backprop-transfer": TransferBackprop,
}


def make_rule(name: str, network: PhysicalNetwork, seed: int = 0, **hyper: Any) -> LearningRule:
    """Build the registered learning rule ``name`` for ``network``."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; choose one of: {', '.join(sorted(RULES))}")
    return RULES[name](network, seed=seed, **hyper)


__all__ = ["RULES", "LearningRule", "PhyLL", "make_rule"]
