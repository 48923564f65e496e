"""Unsupervised PhyLL: label-free pairs, no label embedding, jointly trained readout, costs."""

from __future__ import annotations

import pytest
import torch

from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingInterrupted, resume, train
from phyll.learning.phyll_unsup import blur_operator
from phyll.network import build_network
from phyll.registry import make_rule
from tests.conftest import numpy_square_law, sigint_factory


def make_unsup(n_features=16, n_classes=3, blocks=2, **hyper):
    systems = [numpy_square_law(n_features, 24, seed=0)]
    systems += [numpy_square_law(12, 24, seed=i) for i in range(1, blocks)]
    net = build_network(systems, n_features, 0, 12)
    return net, make_rule("phyll-unsup", net, seed=0, n_classes=n_classes, **hyper)


def test_the_network_embeds_no_label_and_the_readout_sees_every_block():
    exp = build_experiment(TrainConfig(rule="phyll-unsup", epochs=1))
    assert exp.model.network.n_classes == 0
    assert exp.model.blocks[0].in_features == exp.dataset.n_features
    assert exp.model.head.linear.in_features == 2 * exp.config.width
    assert exp.model.head.linear.out_features == exp.dataset.n_classes
    # the readout is the model's head: best epoch, checkpoints and model.pt keep it
    assert any(k.startswith("head.") for k in exp.model.state_dict())


def test_make_rule_needs_the_class_count_and_a_label_free_network():
    net, _ = make_unsup()
    with pytest.raises(ValueError, match="n_classes"):
        make_rule("phyll-unsup", net)
    labelled = build_network([numpy_square_law(19, 24)], 16, 3, 12)
    with pytest.raises(ValueError, match="embeds no labels"):
        make_rule("phyll-unsup", labelled, n_classes=3)


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


def negatives_are_other_samples(rule, x) -> bool:
    """Whether every negative pair the rule builds for ``x`` (distinct samples) joins a view of
    a sample with a view of a *different* sample, as the rule's loss pairs them."""
    first, second, index = rule.make_pairs(x)
    partners = second[index]  # what block_loss contrasts each view with
    return all(not torch.equal(first[i], partners[i]) for i in range(len(x)))


@pytest.mark.parametrize("pairs", ["instance", "hybrid"])
def test_negatives_never_pair_a_sample_with_itself(pairs, monkeypatch):
    _, rule = make_unsup(pairs=pairs, noise=0.0, mask_blur=0)
    x = torch.eye(16)[:4]  # four distinct one-hot samples, no corruption
    for _ in range(20):
        assert negatives_are_other_samples(rule, x) or pairs == "hybrid"
    # the check has teeth: a rule pairing each sample with itself (shift 0) fails it
    monkeypatch.setattr(rule, "negative_partners", lambda batch, device: torch.arange(batch))
    assert not negatives_are_other_samples(rule, x) or pairs == "hybrid"
    with pytest.raises(ValueError, match="at least 2"):
        make_unsup()[1].train_step(x[:1], torch.zeros(1, dtype=torch.long))


def test_hybrid_negatives_mix_the_sample_with_another_one(monkeypatch):
    _, rule = make_unsup(pairs="hybrid", noise=0.0, mask_blur=0)
    x = torch.eye(16)[:4]
    _, hybrids, index = rule.make_pairs(x)
    partner = x[index]
    assert all(not torch.equal(partner[i], x[i]) for i in range(4))
    # every entry of a hybrid comes from the sample or its (different) partner
    assert torch.all((hybrids == x) | (hybrids == partner))
    monkeypatch.setattr(rule, "negative_partners", lambda batch, device: torch.arange(batch))
    _, hybrids, _ = rule.make_pairs(x)
    assert torch.equal(hybrids, x)  # shift 0 would "mix" each sample with itself


def test_unsupervised_training_learns_vowels_far_above_chance():
    summary = train(TrainConfig(rule="phyll-unsup", epochs=6), progress=False)
    assert summary["rule"] == "phyll-unsup" and summary["prediction"] == "readout"
    assert summary["test_accuracy"] > 4 * summary["chance_accuracy"]


def test_resume_restores_the_readout(tmp_path):
    config = TrainConfig(rule="phyll-unsup", epochs=2, checkpoint_every=5)
    reference = train(config, tmp_path / "reference", progress=False)
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):  # a real SIGINT at block 1's 20th call
        train(config, out, progress=False, system_factory=sigint_factory(config, 20))
    summary = resume(out, progress=False, system_factory=sigint_factory(config))
    assert summary["test_accuracy"] == reference["test_accuracy"]
    ref = RunFolder(tmp_path / "reference").load(tmp_path / "reference" / "model.pt")["model"]
    again = RunFolder(out).load(out / "model.pt")["model"]
    assert ref.keys() == again.keys() and any(k.startswith("head.") for k in ref)
    assert all(torch.equal(ref[k], again[k]) for k in ref)
