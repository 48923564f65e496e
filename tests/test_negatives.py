"""Several negatives per sample: distinct wrong labels, the loss that generalises PhyLL's, the
physical passes they cost, and learning with them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.learning.local import distinct_wrong_labels
from phyll.learning.phyll import contrastive_loss


def test_distinct_wrong_labels_never_repeat_and_never_hit_the_truth():
    labels = torch.randint(0, 7, (500,), generator=torch.Generator().manual_seed(1))
    wrong = distinct_wrong_labels(labels, 7, 4, torch.Generator().manual_seed(2))
    assert wrong.shape == (4, 500)
    assert bool((wrong != labels).all())
    assert all(len(set(wrong[:, i].tolist())) == 4 for i in range(500))
    every = distinct_wrong_labels(labels, 7, 6, torch.Generator().manual_seed(3))
    assert sorted(every[:, 0].tolist()) == sorted(set(range(7)) - {int(labels[0])})


def test_the_loss_with_several_negatives_is_a_cross_entropy_over_the_positive():
    g_pos, g_neg = torch.tensor([0.5, 0.1]), torch.tensor([0.2, 0.3, 0.4, -0.1])  # K = 2
    theta = 4.0
    logits = theta * torch.stack([g_pos, g_neg[:2], g_neg[2:]], dim=1)
    expected = F.cross_entropy(logits, torch.zeros(2, dtype=torch.long))
    assert contrastive_loss(g_pos, g_neg, theta) == pytest.approx(float(expected))
    one = contrastive_loss(g_pos, g_neg[:2], theta)  # K = 1: the paper's softplus
    assert one == pytest.approx(float(F.softplus(-theta * (g_pos - g_neg[:2])).mean()))


@pytest.mark.parametrize("rule", ["phyll", "ff"])
def test_three_negatives_cost_four_passes_per_sample_and_learn(rule):
    config = TrainConfig(rule=rule, epochs=4, width=16, measurements=32,
                         rule_params={"negatives": 3})  # fmt: skip
    summary = train(config, progress=False)
    n_train = summary["physical_queries_training"] // (4 * config.blocks * 4)
    assert summary["physical_queries_training"] == 4 * config.blocks * 4 * n_train
    assert summary["test_accuracy"] > 0.7


def test_more_negatives_than_wrong_labels_is_one_clear_error():
    with pytest.raises(Exception, match="only 6 wrong labels"):
        train(TrainConfig(epochs=1, rule_params={"negatives": 7}), progress=False)
