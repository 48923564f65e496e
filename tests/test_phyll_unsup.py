"""Unsupervised PhyLL: label-free pairs, no label embedding, jointly trained readout, costs."""

from __future__ import annotations

import pytest
import torch

from phyll.experiments.config import TrainConfig
from phyll.experiments.train import Trainer, build_experiment, train
from phyll.learning import make_rule
from phyll.learning.phyll_unsup import PhyLLUnsupervised, blur_operator
from phyll.network import build_network
from tests.conftest import numpy_square_law


def make_unsup(n_features=16, n_classes=3, blocks=2, **hyper):
    systems = [numpy_square_law(n_features, 24, seed=0)]
    systems += [numpy_square_law(12, 24, seed=i) for i in range(1, blocks)]
    net = build_network(systems, n_features, 0, 12)
    return net, make_rule("phyll-unsup", net, seed=0, n_classes=n_classes, **hyper)


def test_the_network_embeds_no_label_and_the_readout_sees_every_block():
    exp = build_experiment(TrainConfig(rule="phyll-unsup", epochs=1))
    assert exp.network.n_classes == 0
    assert exp.network.blocks[0].in_features == exp.dataset.n_features
    assert exp.rule.readout.linear.in_features == 2 * exp.config.width
    assert exp.rule.readout.linear.out_features == exp.dataset.n_classes
    # the readout travels with the network's weights (best epoch, checkpoints, model.pt)
    assert any(k.startswith("readout.") for k in exp.network.state_dict())


def test_make_rule_needs_the_class_count_and_a_label_free_network():
    net, _ = make_unsup()
    with pytest.raises(ValueError, match="n_classes"):
        make_rule("phyll-unsup", net)
    labelled = build_network([numpy_square_law(19, 24)], 16, 3, 12)
    with pytest.raises(ValueError, match="embeds no labels"):
        PhyLLUnsupervised(labelled, n_classes=3)


def test_blur_operator_makes_coherent_masks():
    op = blur_operator(64, 6)
    assert torch.allclose(op.sum(1), torch.ones(64))  # an average: masks of 0/1 bits stay in [0, 1]
    _, rule = make_unsup(n_features=64)
    x, other = torch.zeros(200, 64), torch.ones(200, 64)
    mask = 1 - rule.hybrid(x, other)  # 1 where the mask keeps x
    img = mask.view(200, 8, 8)
    same = (img[:, :, 1:] == img[:, :, :-1]).float().mean()
    assert 0.2 < mask.mean() < 0.8 and same > 0.75  # both samples present, in large regions


@pytest.mark.parametrize("pairs", ["instance", "hybrid"])
def test_a_step_costs_two_queries_per_sample_and_block(pairs):
    net, rule = make_unsup(pairs=pairs)
    x, y = torch.rand(8, 16), torch.randint(0, 3, (8,))
    before = [p.clone() for p in net.parameters()]
    loss = rule.train_step(x, y)
    assert loss > 0 and [s.queries for s in net.systems] == [16, 16]
    assert all(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))
    rule.predict(x)
    assert [s.queries for s in net.systems] == [24, 24]  # prediction: one pass per sample


def test_negatives_never_pair_a_sample_with_itself():
    _, rule = make_unsup(pairs="hybrid", mask_blur=0)
    x = torch.eye(16)[:4]  # four distinct one-hot samples
    for _ in range(20):
        shift = int(torch.randint(1, 4, (1,), generator=rule.generator))
        assert not torch.equal(torch.roll(x, shift, 0), x)
    with pytest.raises(ValueError, match="at least 2"):
        rule.train_step(x[:1], torch.zeros(1, dtype=torch.long))


def test_unsupervised_training_learns_vowels_far_above_chance():
    summary = train(TrainConfig(rule="phyll-unsup", epochs=6), progress=False)
    assert summary["rule"] == "phyll-unsup" and summary["prediction"] == "readout"
    assert summary["test_accuracy"] > 4 * summary["chance_accuracy"]


def test_resume_restores_the_readout():
    exp = build_experiment(TrainConfig(rule="phyll-unsup", epochs=1))
    trainer = Trainer(exp)
    trainer.run(progress=False)
    state = trainer.state_dict()
    fresh = Trainer(build_experiment(TrainConfig(rule="phyll-unsup", epochs=1)))
    fresh.load_state_dict(state)
    x = exp.dataset.x_test[:50]
    assert torch.equal(fresh.exp.rule.readout.linear.weight, exp.rule.readout.linear.weight)
    assert torch.equal(fresh.exp.rule.predict(x), exp.rule.predict(x))
