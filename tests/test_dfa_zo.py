"""DFA and ZO: their updates follow their formulas, their queries are counted in closed form,
they resume exactly, and they learn from a black box a user's module provides."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from phyll.accounting import Meter
from phyll.cli import main
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.predict import class_scores
from phyll.experiments.train import TrainingInterrupted, resume, train
from phyll.learning import RULES, model_for, zo
from phyll.learning.dfa import DirectFeedbackAlignment, surrogate_derivative
from phyll.learning.zo import ZerothOrder, perturbed_pre, rademacher, spsa_gradients
from phyll.network import build_network
from phyll.registry import make_rule
from tests.conftest import matmul_flops, numpy_square_law, sigint_factory
from tests.test_resume import assert_identical_runs

F_IN, C, W, M = 3, 3, 8, 10  # tiny network: features, classes, width, measurements


def black_box_net(blocks: int = 2):
    systems = [numpy_square_law(F_IN + C if i == 0 else W, M, seed=i) for i in range(blocks)]
    return build_network(systems, F_IN, C, W)


def batch(b: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(b, F_IN, generator=g), torch.arange(b) % C


def sgd_rule(cls, net, **params):
    """``cls`` on ``net`` with plain SGD (lr 1, no momentum): a step subtracts the gradient."""
    resolved = cls.resolve_params(None, params)
    model = model_for(cls.model_spec(resolved), net, C, seed=0)
    return cls(model, resolved, seed=0, optimizer=lambda p: torch.optim.SGD(p, lr=1.0))


def test_both_rules_are_registered_model_free_and_listed(capsys):
    assert RULES["dfa"] is DirectFeedbackAlignment and RULES["zo"] is ZerothOrder
    assert DirectFeedbackAlignment.model_free and ZerothOrder.model_free
    assert main(["list", "--params"]) == 0
    listing = capsys.readouterr().out
    for name in ("surrogate", "perturbation", "n_perturbations", "loss"):
        assert f"  {name}: " in listing


# ---------------------------------------------------------------------- DFA
def test_surrogate_derivatives_are_functions_of_the_next_drive():
    h = torch.tensor([[0.0, 1.0, 2.0, 4.0]])
    d = torch.tensor([[0.0, 0.25, 0.5, 1.0]])  # h / max(h): what drives the next system
    assert torch.equal(surrogate_derivative("one", h), torch.ones_like(h))
    assert torch.equal(surrogate_derivative("output", h), d)
    assert torch.allclose(surrogate_derivative("sigmoid", h), torch.tensor([[0, 0.75, 1, 0]]))


def test_feedback_matrices_come_from_the_seed_and_travel_in_the_state():
    rule = make_rule("dfa", black_box_net(3), seed=4)
    assert [tuple(b.shape) for b in rule.feedback] == [(C, W)] * 3
    again = make_rule("dfa", black_box_net(3), seed=4)
    assert all(torch.equal(a, b) for a, b in zip(rule.feedback, again.feedback, strict=True))
    other = make_rule("dfa", black_box_net(3), seed=5)
    assert not torch.equal(other.feedback[0], rule.feedback[0])
    other.load_state_dict(rule.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(rule.feedback, other.feedback, strict=True))
    with pytest.raises(ValueError, match="feedback"):
        make_rule("dfa", black_box_net(2), seed=4).load_state_dict(rule.state_dict())


@pytest.mark.parametrize("surrogate", ["one", "output", "sigmoid"])
def test_dfa_step_is_the_projected_error_times_the_surrogate(surrogate):
    net = black_box_net(blocks=1)
    rule = sgd_rule(DirectFeedbackAlignment, net, surrogate=surrogate)
    linear = net.blocks[0].linear
    seen = {}
    linear.register_forward_hook(lambda m, i, o: seen.update(u=i[0].detach(), pre=o.detach()))
    before = linear.weight.detach().clone()
    head = type(rule.head)(W, C)
    head.load_state_dict(rule.head.state_dict())
    x, y = batch()
    rule.train_step(x, y)
    u, pre = seen["u"], seen["pre"]
    with torch.no_grad():
        error = (head(pre.abs()).softmax(dim=1) - F.one_hot(y, C)) / len(y)
        signal = (error @ rule.feedback[0]) * surrogate_derivative(surrogate, pre.abs())
        expected = (signal * pre.sign()).T @ u  # through |·| only: no physics, no depth
    assert torch.allclose(before - linear.weight, expected, atol=1e-6)


def test_a_block_learns_only_through_its_own_feedback_matrix():
    net = black_box_net()
    rule = sgd_rule(DirectFeedbackAlignment, net)
    rule.feedback[0].zero_()
    before = [b.linear.weight.detach().clone() for b in net.blocks]
    rule.train_step(*batch())
    assert torch.equal(net.blocks[0].linear.weight, before[0])  # no error reaches it otherwise
    assert not torch.equal(net.blocks[1].linear.weight, before[1])


def test_dfa_queries_and_flops_match_a_hand_count():
    net = black_box_net()
    rule = make_rule("dfa", net)
    x, y = batch(b := 5)
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)
    widths = [(M + F_IN + C, W), (M + W, W)]
    assert meter.costs.physical_queries == 2 * b  # one pass per sample and block
    # per block: forward and weight gradient of W, the feedback product e·B_l; the head: its
    # forward and weight gradient on detached features
    blocks = sum(2 * 2 * b * i * o + 2 * b * C * o for i, o in widths)
    assert matmul_flops(meter) == blocks + 2 * 2 * b * W * C
    meter = Meter()
    with meter.measure():
        rule.predict(x)
    assert meter.costs.physical_queries == 2 * b


# ---------------------------------------------------------------------- ZO
def test_perturbed_pre_activations_are_those_of_the_perturbed_weights():
    layer = nn.Linear(4, 3).double()
    g = torch.Generator().manual_seed(0)
    dw, db = rademacher((2, 3, 4), layer.weight, g), rademacher((2, 3), layer.bias, g)
    shared, own = torch.rand(5, 4, dtype=torch.float64), torch.rand(4, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        for u in (shared, own):
            pre = perturbed_pre(layer, u, (dw, db), 0.1)
            for row, (k, sign) in enumerate([(0, 1), (1, 1), (0, -1), (1, -1)]):
                inputs = u if u.dim() == 2 else u[row]
                weight, bias = layer.weight + sign * 0.1 * dw[k], layer.bias + sign * 0.1 * db[k]
                assert torch.allclose(pre[row], inputs @ weight.T + bias)


@pytest.mark.parametrize("chunk", [1 << 22, 3 * 15])  # all directions at once; 3 per chunk
def test_spsa_estimates_the_gradient_along_each_direction(chunk, monkeypatch):
    monkeypatch.setattr(zo, "CHUNK_ELEMENTS", chunk)
    layer = nn.Linear(4, 3).double()
    u = torch.rand(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = torch.linspace(0.5, 2.0, 3).double()
    calls = []

    def losses_of(directions):  # a quadratic in the weights: central differences are exact
        calls.append(directions[0][0].shape[0])
        pre = perturbed_pre(layer, u, directions[0], 0.1)
        return 0.5 * (a * pre**2).sum(dim=(1, 2))

    (0.5 * (a * layer(u) ** 2).sum()).backward()
    gradient = torch.cat([layer.weight.grad.flatten(), layer.bias.grad])
    before = [p.detach().clone() for p in layer.parameters()]
    with torch.no_grad():
        one = spsa_gradients([layer], losses_of, 0.1, 1, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    delta = torch.cat([rademacher((12,), u, g), rademacher((3,), u, g)])
    estimate = torch.cat([one[0].flatten(), one[1]])
    assert torch.allclose(estimate, (gradient @ delta) * delta)  # one antithetic pair
    with torch.no_grad():
        many = spsa_gradients([layer], losses_of, 0.1, 3000, torch.Generator().manual_seed(4))
    mean = torch.cat([many[0].flatten(), many[1]])
    assert F.cosine_similarity(mean, gradient, dim=0) > 0.98  # unbiased: E[ΔΔᵀ] = I
    assert sum(calls) == 3001 and max(calls) == (3000 if chunk > 45 else 3)
    assert all(torch.equal(p, b) for p, b in zip(layer.parameters(), before, strict=True))


@pytest.mark.parametrize("blocks", [1, 2, 3])
@pytest.mark.parametrize("k", [1, 3])
def test_zo_queries_per_step_in_closed_form(blocks, k):
    x, y = batch(b := 5)
    net = black_box_net(blocks)
    rule = make_rule("zo", net, loss="global", n_perturbations=k)
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)
    # one unperturbed pass; 2k perturbed passes re-drive every block after the first, whose
    # measurement depends on no trainable weight
    assert meter.costs.physical_queries == b * blocks + 2 * k * b * (blocks - 1)
    assert [s.queries for s in net.systems] == [b] + [b + 2 * k * b] * (blocks - 1)
    with meter.measure():
        rule.predict(x)
    assert meter.costs.physical_queries == b * blocks + 2 * k * b * (blocks - 1) + b * blocks

    net = black_box_net(blocks)
    rule = make_rule("zo", net, loss="local", n_perturbations=k)
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)
    # positives and negatives once per block; the perturbed local losses are digital
    assert meter.costs.physical_queries == 2 * b * blocks
    with meter.measure():
        rule.predict(x)  # every candidate label
    assert meter.costs.physical_queries == 2 * b * blocks + C * b * blocks


@pytest.mark.parametrize("loss", ["global", "local"])
def test_zo_moves_every_weight_and_conditions_both_halves_of_a_pair_alike(loss):
    net = black_box_net()
    rule = make_rule("zo", net, loss=loss, n_perturbations=2)
    modes: list[list[bool]] = [[] for _ in net.blocks]
    for block, seen in zip(net.blocks, modes, strict=True):
        block.conditioner.register_forward_hook(lambda m, i, o, seen=seen: seen.append(m.training))
    before = [p.detach().clone() for p in rule.block_params]
    rule.train_step(*batch())
    assert all(not torch.equal(p, b) for p, b in zip(rule.block_params, before, strict=True))
    # the running statistics follow the unperturbed pass only: the local losses reuse what the
    # weights read; the global perturbed passes (one call for all directions) are conditioned
    # with the statistics frozen
    assert modes == ([[True]] * 2 if loss == "local" else [[True, False]] * 2)


# ---------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    ("rule", "params", "epochs", "floor"),
    [
        ("dfa", {}, 3, 0.85),
        ("zo", {}, 3, 0.8),
        ("zo", {"loss": "global", "n_perturbations": 16}, 3, 0.8),
    ],
)
def test_each_learns_well_above_chance(rule, params, epochs, floor):
    config = TrainConfig(dataset="vowels", rule=rule, epochs=epochs, rule_params=params)
    summary = train(config, progress=False)
    assert summary["test_accuracy"] > floor > 3 * summary["chance_accuracy"]
    assert summary["model_free"] is True


@pytest.mark.parametrize("rule", ["dfa", "zo"])
def test_cli_trains_a_numpy_black_box_from_a_users_module(rule, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "vowels7", "--system", "tests.numpy_lab:make", "--rule", rule]
    assert main([*argv, "--epochs", "5", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["system"] == "tests.numpy_lab:make" and summary["rule"] == rule
    assert summary["test_accuracy"] > 0.8 > 4 * summary["chance_accuracy"]
    assert summary["physical_queries_training"] > 0


RESUMABLE = {
    "dfa": ({}, 1),  # (rule parameters, calls of block 1's system per training step)
    "zo-global": ({"loss": "global"}, 2),  # one call for all the perturbed drives
    "zo-local": ({"loss": "local"}, 1),
}


@pytest.mark.parametrize("case", sorted(RESUMABLE))
def test_interrupted_then_resumed_is_bit_identical(case, tmp_path):
    params, calls_per_step = RESUMABLE[case]
    config = TrainConfig(
        dataset="vowels", epochs=2, width=16, measurements=16, checkpoint_every=4,
        rule=case.split("-")[0], rule_params=params,
    )  # fmt: skip
    reference = tmp_path / "reference"
    train(config, reference, progress=False, system_factory=sigint_factory(config))
    steps = math.ceil(len(build_experiment(config).splits.y_train) / config.batch_size)
    out = tmp_path / "interrupted"
    at_call = calls_per_step * steps + 1 + calls_per_step * 3  # epoch 2, step 3
    with pytest.raises(TrainingInterrupted):
        train(config, out, progress=False, system_factory=sigint_factory(config, at_call))
    resume(out, progress=False, system_factory=sigint_factory(config))
    assert_identical_runs(reference, out)


@pytest.mark.parametrize(("rule", "params"), [("dfa", {}), ("zo", {}), ("zo", {"loss": "global"})])
def test_class_scores_are_what_the_rule_predicts_from(rule, params):
    learner = make_rule(rule, black_box_net(), **params)
    learner.train_step(*batch())
    x, _ = batch(9)
    scores = class_scores(learner, x)  # what phyll predict and phyll evaluate report
    assert scores.shape == (9, C)
    assert torch.equal(scores.argmax(dim=1), learner.predict(x))  # the NumPy box is noiseless


@pytest.mark.parametrize(("rule", "params"), [("dfa", {}), ("zo", {"loss": "global"})])
def test_a_readout_rate_of_its_own_leaves_frozen_blocks_as_the_control(rule, params):
    net = black_box_net()
    learner = make_rule(rule, net, lr=1e-12, readout_lr=0.1, **params)
    blocks, head = list(net.parameters()), list(learner.model.head.parameters())
    before = [p.detach().clone() for p in blocks + head]
    learner.train_step(*batch())
    moved = [(p - b).abs().max().item() for p, b in zip(blocks + head, before, strict=True)]
    assert max(moved[: len(blocks)]) < 1e-9 and min(moved[len(blocks) :]) > 1e-3
