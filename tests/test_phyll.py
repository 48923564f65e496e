"""PhyLL: model-free (proved with black boxes), local, counted, and it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.learning.phyll import wrong_labels
from phyll.network import build_network
from phyll.registry import make_rule
from phyll.systems import AcousticCavity, PhysicalSystem
from tests.conftest import numpy_square_law


class GradTrap(PhysicalSystem):
    """Wraps a system and fails the test if a learner calls it with autograd enabled."""

    differentiable = False

    def __init__(self, inner: PhysicalSystem) -> None:
        super().__init__(inner.n_inputs, inner.n_outputs, inner.drive_range)
        self.inner = inner

    def __call__(self, drive: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or drive.requires_grad:
            raise AssertionError("a model-free rule called the physics with autograd enabled")
        return super().__call__(drive)

    def _measure(self, drive: torch.Tensor) -> torch.Tensor:
        return self.inner(drive)


def net_for(systems_factory, n_features=3, n_classes=3, width=8, blocks=2):
    systems = [
        systems_factory(i, n_features + n_classes if i == 0 else width) for i in range(blocks)
    ]
    return build_network(systems, n_features, n_classes, width)


def test_wrong_labels_are_never_the_true_label_and_cover_all_others():
    labels = torch.randint(0, 5, (5000,))
    wrong = wrong_labels(labels, 5, torch.Generator().manual_seed(0))
    assert not (wrong == labels).any()
    for c in range(5):
        others = wrong[labels == c]
        assert set(others.tolist()) == set(range(5)) - {c}


def test_train_step_drives_each_system_twice_per_sample_and_predict_once_per_label():
    net = net_for(lambda i, n: numpy_square_law(n, 10, seed=i))
    rule = make_rule("phyll", net, seed=0)
    x, y = torch.rand(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    rule.train_step(x, y)
    assert [s.queries for s in net.systems] == [12, 12]  # 2 × batch: positives and negatives
    rule.predict(x)
    assert [s.queries for s in net.systems] == [12 + 18, 12 + 18]  # 3 labels × 6 samples


def test_each_block_is_updated_from_its_own_loss_only():
    net = net_for(lambda i, n: numpy_square_law(n, 10, seed=i))
    rule = make_rule("phyll", net, seed=0, lr=0.1)
    before = [b.linear.weight.detach().clone() for b in net.blocks]
    # zero the second block's learning rate: its weights must not move, the first's must
    for group in rule.optimizers[1].param_groups:
        group["lr"] = 0.0
    rule.train_step(torch.rand(8, 3), torch.randint(0, 3, (8,)))
    assert not torch.equal(net.blocks[0].linear.weight, before[0])
    assert torch.equal(net.blocks[1].linear.weight, before[1])


#: every model-free rule that drives the physics, in each of its modes
MODEL_FREE = [
    ("phyll", {}),
    ("phyll", {"prediction": "readout"}),
    ("dfa", {}),
    ("zo", {"loss": "local"}),
    ("zo", {"loss": "global", "n_perturbations": 2}),
]


@pytest.mark.parametrize("make", [
    lambda i, n: GradTrap(numpy_square_law(n, 10, seed=i)),
    lambda i, n: GradTrap(AcousticCavity(n, 10, seed=i)),
])  # fmt: skip
@pytest.mark.parametrize(("rule", "params"), MODEL_FREE)
def test_training_and_prediction_never_touch_the_physics_with_autograd(make, rule, params):
    net = net_for(make)
    learner = make_rule(rule, net, seed=0, **params)
    assert learner.model_free
    for _ in range(3):
        learner.train_step(torch.rand(8, 3), torch.randint(0, 3, (8,)))
    learner.predict(torch.rand(4, 3))
    assert all(s.queries > 0 for s in net.systems)


def test_goodness_scores_have_one_column_per_label():
    net = net_for(lambda i, n: numpy_square_law(n, 10, seed=i))
    scores = make_rule("phyll", net).goodness_per_label(torch.rand(5, 3))
    assert scores.shape == (5, 3)
    assert (scores.abs() <= len(net.blocks) + 1e-5).all()  # sum of cosines


def test_unsupervised_network_is_refused_by_supervised_phyll():
    net = build_network([numpy_square_law(3, 4)], n_features=3, n_classes=0, width=4)
    with pytest.raises(ValueError, match="at least 2 embedded labels"):
        make_rule("phyll", net)


def _numpy_factory(i: int, n_in: int, n_out: int):
    return numpy_square_law(n_in, n_out, seed=i)


def test_same_accuracy_band_with_a_numpy_black_box_as_with_the_simulator():
    config = TrainConfig(dataset="vowels", epochs=6, seed=0)
    simulated = train(config, progress=False)
    black_box = train(config, progress=False, system_factory=_numpy_factory)
    chance = simulated["chance_accuracy"]
    assert simulated["test_accuracy"] > 0.8 > 3 * chance
    assert black_box["test_accuracy"] > 0.8
    assert abs(simulated["test_accuracy"] - black_box["test_accuracy"]) < 0.1


def test_readout_prediction_learns_too():
    config = TrainConfig(dataset="vowels", epochs=6, seed=1, rule_params={"prediction": "readout"})
    summary = train(config, progress=False)
    assert summary["prediction"] == "readout"
    assert summary["test_accuracy"] > 0.7


def test_training_queries_equal_samples_driven():
    config = TrainConfig(dataset="vowels", epochs=2, seed=0, batch_size=50, blocks=3)
    summary = train(config, progress=False)
    n_train = len(build_experiment(config).splits.y_train)
    # epochs × (positives, negatives) × samples × blocks
    assert summary["physical_queries_training"] == 2 * 2 * n_train * 3
    # every query driven (training, evaluation) plus the systems' calibration drives (setup)
    assert summary["physical_queries_setup"] == 3 * 2048  # acoustic gain staging, per system
    assert sum(summary["queries_per_system"]) + 3 * 2048 == summary["physical_queries"]
    assert np.isclose(
        summary["wall_time_s"], summary["simulation_time_s"] + summary["digital_time_s"]
    )


@pytest.mark.parametrize("prediction", ["goodness", "readout"])
def test_predict_restores_the_mode_it_found(prediction):
    net = net_for(lambda i, n: numpy_square_law(n, 10, seed=i))
    rule = make_rule("phyll", net, prediction=prediction)
    for training in (True, False):
        rule.model.train(training)
        rule.predict(torch.rand(4, 3))
        assert rule.model.training is training
        assert all(m.training is training for m in rule.model.modules())
