"""Every rule's class scores: what ``phyll predict --out`` and ``phyll evaluate`` report, and
what every rule predicts from (their argmax)."""

from __future__ import annotations

import pytest
import torch

from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.predict import class_scores
from phyll.learning import RULES
from phyll.learning.base import LearningRule, ModelSpec, NoScoresError
from phyll.registry import make_rule
from tests.conftest import numpy_square_law

#: rule parameters that pick each rule's other way of scoring, next to its default one
VARIANTS = [(name, {}) for name in RULES] + [
    ("phyll", {"prediction": "readout"}),
    ("zo", {"loss": "global"}),
]


@pytest.mark.parametrize(("rule", "params"), VARIANTS, ids=lambda v: str(v))
def test_every_registered_rules_scores_are_per_class_and_argmax_to_its_predictions(rule, params):
    # random-features: a noiseless, differentiable system (backprop's digital model included),
    # so two passes over the same rows measure the same
    config = TrainConfig(
        dataset="vowels", system="random-features", rule=rule, rule_params=params,
        blocks=2, width=8, measurements=16, batch_size=32,
    )  # fmt: skip
    exp = build_experiment(config)
    x, y = exp.splits.x_train, exp.splits.y_train
    exp.rule.setup()
    for i in range(0, 96, 32):
        exp.rule.train_step(x[i : i + 32], y[i : i + 32])
    rows = exp.splits.x_test[:11]
    scores = class_scores(exp.rule, rows)
    assert scores.shape == (11, exp.dataset.n_classes)
    assert torch.isfinite(scores).all()
    assert not torch.equal(scores, scores.round())  # real scores, not a one-hot of the labels
    assert torch.equal(scores.argmax(dim=1), exp.rule.predict(rows))


class OnlyPredicts(LearningRule):
    """A rule of a user's own that predicts nothing on its own: no scores."""

    name, model_free = "only-predicts", True

    @classmethod
    def model_spec(cls, params):
        return ModelSpec(label_channels=True)

    def train_step(self, x, y):
        return 0.0


def test_a_rule_without_scores_is_refused_in_one_line_not_given_one_hot_scores():
    from phyll.network import build_network

    net = build_network([numpy_square_law(6, 8)], n_features=3, n_classes=3, width=4)
    rule = OnlyPredicts(make_rule("phyll", net).model)
    with pytest.raises(NoScoresError, match=r"OnlyPredicts defines no class scores: implement"):
        class_scores(rule, torch.rand(2, 3))
    with pytest.raises(NoScoresError):
        rule.predict(torch.rand(2, 3))
