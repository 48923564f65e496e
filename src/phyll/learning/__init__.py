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
from phyll.learning.phyll_unsup import PhyLLUnsupervised
from phyll.network import PhysicalNetwork

RULES: dict[str, type[LearningRule]] = {
    "phyll": PhyLL,
    "phyll-unsup": PhyLLUnsupervised,
    "ff": ForwardForward,
    "pat": PhysicsAwareTraining,
    "backprop-ideal": IdealBackprop,
    "backprop-transfer": TransferBackprop,
}


def rule_class(name: str) -> type[LearningRule]:
    """The registered rule class ``name`` (its class attributes say how to build its network)."""
    if name not in RULES:
        raise ValueError(f"unknown rule {name!r}; choose one of: {', '.join(sorted(RULES))}")
    return RULES[name]


def make_rule(
    name: str,
    network: PhysicalNetwork,
    seed: int = 0,
    n_classes: int | None = None,
    **hyper: Any,
) -> LearningRule:
    """Build the registered learning rule ``name`` for ``network``.

    ``n_classes`` (the task's classes) is passed to label-free rules (``embeds_labels`` False),
    whose network embeds no label; rules that embed labels read it from the network.
    """
    cls = rule_class(name)
    if not cls.embeds_labels:
        if n_classes is None:
            raise ValueError(f"rule {name!r} embeds no labels: pass n_classes for its readout")
        hyper["n_classes"] = n_classes
    return cls(network, seed=seed, **hyper)


__all__ = [
    "RULES",
    "ForwardForward",
    "IdealBackprop",
    "LearningRule",
    "PhyLL",
    "PhyLLUnsupervised",
    "PhysicsAwareTraining",
    "TransferBackprop",
    "make_rule",
    "rule_class",
]
