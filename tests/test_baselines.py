"""FF, in-silico backprop and PAT: they learn, they are counted by hand, they refuse what they
cannot do, and PAT's backward is exactly the twin's vector-Jacobian product."""

from __future__ import annotations

import pytest
import torch

from phyll.accounting import Meter
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.learning.backprop import NotDifferentiableError
from phyll.learning.ff import ForwardForward, mean_square_goodness
from phyll.learning.pat import physics_aware
from phyll.network import build_network
from phyll.registry import make_rule
from phyll.systems import AcousticCavity
from phyll.twin import MLPTwin, relative_mse
from tests.conftest import matmul_flops, numpy_square_law

F_IN, C, W, M = 3, 2, 4, 6  # tiny network: features, classes, width, measurements


def acoustic_net(blocks: int = 2, **system):
    n_in = F_IN + C
    systems = []
    for i in range(blocks):
        systems.append(AcousticCavity(n_in, M, seed=i, **system))
        n_in = W
    return build_network(systems, F_IN, C, W)


def linear_flops(batch: int, n_in: int, n_out: int) -> int:
    return 2 * batch * n_in * n_out


# ---------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    ("rule", "params"),
    [
        ("ff", {}),
        ("backprop-ideal", {}),
        ("backprop-transfer", {}),
        ("pat", {"twin_samples": 256, "twin_epochs": 10, "twin_hidden": (64,)}),
    ],
)
def test_each_rule_learns_well_above_chance(rule, params):
    config = TrainConfig(
        dataset="vowels", rule=rule, epochs=3, width=32, measurements=64, rule_params=params
    )
    summary = train(config, progress=False)
    assert summary["test_accuracy"] > 0.6 > 4 * summary["chance_accuracy"]


@pytest.mark.parametrize("rule", ["backprop-ideal", "pat"])
def test_classifier_head_is_saved_with_the_selected_weights(rule, tmp_path):
    """The head is part of the model: model.pt and best-epoch restoring include it."""
    params = {"twin_samples": 128, "twin_epochs": 2, "twin_hidden": (16,)} if rule == "pat" else {}
    config = TrainConfig(
        dataset="vowels", rule=rule, epochs=2, width=8, measurements=16, rule_params=params
    )
    train(config, tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["model"]
    assert {"head.linear.weight", "head.linear.bias"} <= set(saved)


# ---------------------------------------------------------------------- FF
def test_ff_goodness_and_loss_follow_hinton():
    rule = make_rule("ff", acoustic_net(), theta=2.0)
    assert isinstance(rule, ForwardForward)
    y = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    assert torch.allclose(mean_square_goodness(y), torch.tensor([5.0, 2.0]))
    loss = rule.local_loss(y[:1], y[1:], block=0)  # G⁺ = 5, G⁻ = 2
    expected = torch.nn.functional.softplus(torch.tensor(-3.0)) + torch.log(torch.tensor(2.0))
    assert torch.isclose(loss, expected)


def test_ff_queries_and_flops_match_a_hand_count():
    net = acoustic_net()
    rule = make_rule("ff", net)
    b = 5
    x, y = torch.rand(b, F_IN), torch.randint(0, C, (b,))
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)
    # per block: 2B samples; forward and weight gradient of W only (inputs need no gradient)
    widths = [(M + F_IN + C, W), (M + W, W)]
    assert meter.costs.physical_queries == 2 * 2 * b
    assert matmul_flops(meter) == sum(2 * linear_flops(2 * b, i, o) for i, o in widths)
    meter = Meter()
    with meter.measure():
        rule.predict(x)  # every candidate label through every block
    assert meter.costs.physical_queries == 2 * C * b
    assert matmul_flops(meter) == sum(linear_flops(C * b, i, o) for i, o in widths)


# ---------------------------------------------------------------------- backprop
@pytest.mark.parametrize("rule", ["backprop-ideal", "backprop-transfer"])
def test_backprop_refuses_a_black_box(rule):
    net = build_network([numpy_square_law(F_IN + C, M)], F_IN, C, W)
    with pytest.raises(NotDifferentiableError, match="differentiable"):
        make_rule(rule, net)


def test_digital_model_calls_are_digital_flops_not_physical_queries():
    system = AcousticCavity(5, 6)
    model = system.as_digital_model()
    drive = torch.rand(4, 5, requires_grad=True)
    meter = Meter()
    with meter.measure():
        model(drive).sum().backward()
    # forward: real amplitudes onto 6 complex pressures, one real product onto interleaved
    # (re, im), [4,5]@[5,12]; backward: gradient w.r.t. the drive, [4,12]@[12,5]
    assert meter.costs.physical_queries == 0 and meter.costs.simulation_time_s == 0
    assert matmul_flops(meter) == 2 * linear_flops(4, 5, 2 * 6)
    assert drive.grad is not None and system.queries == 0


def test_backprop_flops_and_queries_match_a_hand_count():
    net = acoustic_net()
    rule = make_rule("backprop-transfer", net)
    b = 3
    x, y = torch.rand(b, F_IN), torch.randint(0, C, (b,))
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)
    n1, n2 = (M + F_IN + C, W), (M + W, W)
    complex_mac = 2  # real amplitudes onto complex pressures: one real product onto (re, im)
    forward = (
        complex_mac * linear_flops(b, F_IN + C, M) + linear_flops(b, *n1)  # simulator 1, W₁
        + complex_mac * linear_flops(b, W, M) + linear_flops(b, *n2)  # simulator 2, W₂
        + linear_flops(b, W, C)  # head
    )  # fmt: skip
    backward = (
        2 * linear_flops(b, W, C)  # head: weight and input gradients
        + 2 * linear_flops(b, *n2)  # W₂: weight and input gradients
        + complex_mac * linear_flops(b, W, M)  # simulator 2: drive gradient (digital model)
        + linear_flops(b, *n1)  # W₁: weight gradient (block 1's input needs none)
    )
    assert meter.costs.physical_queries == 0  # training in silico queries no hardware
    assert matmul_flops(meter) == forward + backward
    assert [s.queries for s in net.systems] == [0, 0]
    rule.predict(x)  # transfer: tested on the real systems
    assert [s.queries for s in net.systems] == [b, b]
    ideal = make_rule("backprop-ideal", acoustic_net())
    ideal.predict(x)
    assert [s.queries for s in ideal.network.systems] == [0, 0]


def test_transfer_is_tested_on_the_real_system_and_ideal_on_the_model():
    torch.manual_seed(0)
    x = torch.rand(64, F_IN)
    net = acoustic_net(fabrication_std_m=0.05, noise_std=0.05)
    ideal = make_rule("backprop-ideal", net)
    transfer = make_rule("backprop-transfer", net)
    transfer.model.head.load_state_dict(ideal.model.head.state_dict())
    assert torch.equal(ideal.predict(x), ideal.predict(x))  # nominal model: deterministic
    assert not torch.equal(ideal.logits(x, in_silico=True), transfer.logits(x, in_silico=False))


# ---------------------------------------------------------------------- PAT
def test_pat_backward_is_the_twins_vjp_and_forward_the_real_system():
    system = numpy_square_law(5, 7)  # a NumPy black box: no autograd path at all
    twin = MLPTwin(5, 7, hidden=(16, 16))
    drive = torch.rand(4, 5, requires_grad=True)
    out = physics_aware(drive, system, twin)
    assert torch.equal(out.detach(), system(drive.detach()))
    v = torch.randn(4, 7)
    out.backward(v)
    _, expected = torch.autograd.functional.vjp(twin, drive.detach(), v)
    assert torch.allclose(drive.grad, expected, atol=1e-6)


def test_pat_vjp_runs_under_the_flop_counter():
    system = numpy_square_law(5, 7)
    twin = MLPTwin(5, 7, hidden=(16,))
    drive = torch.rand(4, 5, requires_grad=True)
    meter = Meter()
    with meter.measure():
        physics_aware(drive, system, twin).sum().backward()
    # backward: twin forward (5→16→7) and its input gradient (7→16→5), batch 4
    assert matmul_flops(meter) == 2 * (linear_flops(4, 5, 16) + linear_flops(4, 16, 7))
    assert meter.costs.physical_queries == 4


def test_twin_fits_a_square_law_and_reports_heldout_error():
    torch.manual_seed(0)
    system = numpy_square_law(4, 6)
    drives = torch.rand(600, 4)
    twin = MLPTwin(4, 6, hidden=(64, 64))
    report = twin.fit(drives, system(drives), epochs=60, generator=torch.Generator().manual_seed(0))
    assert report.n_heldout == 120 and report.n_train == 480
    assert report.heldout_rel_mse < 0.05
    assert relative_mse(system(drives).mean(0).expand(600, 6), system(drives)) == pytest.approx(1)


def test_pat_queries_and_flops_match_a_hand_count():
    net = build_network([numpy_square_law(F_IN + C, M), numpy_square_law(W, M)], F_IN, C, W)
    hidden, n_twin, epochs, b = 8, 20, 2, 3
    rule = make_rule(
        "pat", net, twin_samples=n_twin, twin_epochs=epochs, twin_hidden=(hidden,),
        heldout_fraction=0.25, refit_every=2, refit_epochs=1,
    )  # fmt: skip
    x, y = torch.rand(b, F_IN), torch.randint(0, C, (b,))
    meter = Meter()
    with meter.measure():
        rule.train_step(x, y)

    def twin_fwd(n, n_in):
        return linear_flops(n, n_in, hidden) + linear_flops(n, hidden, M)

    n_fit, n_held = 15, 5
    fit = sum(
        epochs * (3 * twin_fwd(n_fit, n_in) - linear_flops(n_fit, n_in, hidden))  # fwd + grads
        + twin_fwd(n_fit + n_held, n_in)  # reported error on fitting and held-out pairs
        for n_in in (F_IN + C, W)
    )
    n1, n2 = (M + F_IN + C, W), (M + W, W)
    step = (
        linear_flops(b, *n1) + linear_flops(b, *n2) + linear_flops(b, W, C)  # forward
        + 2 * linear_flops(b, W, C) + 2 * linear_flops(b, *n2) + linear_flops(b, *n1)
        + 2 * twin_fwd(b, W)  # block 2's physics: twin forward and input gradient (its VJP)
    )  # fmt: skip
    assert meter.costs.physical_queries == 2 * n_twin + 2 * b  # twin data + one pass per block
    assert matmul_flops(meter) == fit + step
    assert rule.describe()["twin_queries"] == 2 * n_twin
    assert len(rule.describe()["twin_heldout_rel_mse"]) == 2
    for _ in range(2):  # the second of these refits (step 2), on twin data + training pairs
        rule.train_step(x, y)
    assert rule.describe()["twin_fits"] == 2
    assert [s.queries for s in net.systems] == [n_twin + 3 * b] * 2  # refits cost no queries
