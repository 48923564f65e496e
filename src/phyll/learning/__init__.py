"""Learning rules: how the trainable weights of a physical network are updated.

One module per rule; :data:`RULES` (a :class:`~phyll.plugins.Registry`) maps the command-line
names to the rule classes (a new rule is one module and one line here; an installed package
registers its own with a ``phyll.rules`` entry point). :func:`phyll.registry.make_rule` builds
a rule and the model it declares around a network, for direct Python use.
"""

from __future__ import annotations

from phyll.learning.backprop import IdealBackprop, TransferBackprop
from phyll.learning.base import LearningRule, ModelSpec, RuleParams, model_for
from phyll.learning.dfa import DirectFeedbackAlignment
from phyll.learning.ff import ForwardForward
from phyll.learning.linear import LinearClassifier
from phyll.learning.pat import PhysicsAwareTraining
from phyll.learning.phyll import PhyLL
from phyll.learning.phyll_unsup import PhyLLUnsupervised
from phyll.learning.zo import ZerothOrder
from phyll.plugins import Registry, subclasses_of

RULES: Registry[type[LearningRule]] = Registry(
    "rule",
    "phyll.rules",
    {
        "phyll": PhyLL,
        "phyll-unsup": PhyLLUnsupervised,
        "ff": ForwardForward,
        "pat": PhysicsAwareTraining,
        "dfa": DirectFeedbackAlignment,  # augmented direct feedback alignment (model-free)
        "zo": ZerothOrder,  # zeroth-order SPSA (model-free)
        "backprop-ideal": IdealBackprop,
        "backprop-transfer": TransferBackprop,
        "linear": LinearClassifier,  # a digital control: logistic regression on the raw inputs
    },
    accept=subclasses_of(LearningRule),
    also="MODULE:NAME",
)

__all__ = [
    "RULES",
    "DirectFeedbackAlignment",
    "ForwardForward",
    "IdealBackprop",
    "LearningRule",
    "LinearClassifier",
    "ModelSpec",
    "PhyLL",
    "PhyLLUnsupervised",
    "PhysicsAwareTraining",
    "RuleParams",
    "TransferBackprop",
    "ZerothOrder",
    "model_for",
]
