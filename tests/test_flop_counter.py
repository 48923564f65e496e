"""Every formula of phyll.flops against a hand count (the table is in phyll/flops.py)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from phyll import flops
from phyll.accounting import Meter, count_flops
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig


# ---------------------------------------------------------------------------------- FFTs
def test_complex_fft2_is_five_n_log2_n():
    n = 64 * 64
    x = torch.randn(64, 64, dtype=torch.complex64)
    assert count_flops(torch.fft.fft2, x) == 5 * n * math.log2(n)


@pytest.mark.parametrize(
    ("shape", "fft", "points"),
    [
        ((8, 64), lambda x: torch.fft.fft(x, dim=0), 8),  # 64 transforms of 8 points
        ((3, 16, 16), torch.fft.fft2, 256),  # a batch of 3 images
        ((4, 8, 8, 8), lambda x: torch.fft.fftn(x, dim=(1, 2, 3)), 512),
        ((2, 6, 10), lambda x: torch.fft.fftn(x, dim=(0, 2)), 20),  # non-adjacent dims
    ],
)
def test_fft_of_any_dims_counts_every_transform_of_the_batch(shape, fft, points):
    x = torch.randn(*shape, dtype=torch.complex64)
    transforms = x.numel() // points
    assert count_flops(fft, x) == round(transforms * 5 * points * math.log2(points))


def test_a_normalised_fft_adds_one_complex_scaling_per_element():
    n = 32 * 32
    x = torch.randn(32, 32, dtype=torch.complex64)
    assert count_flops(torch.fft.ifft2, x) == 5 * n * math.log2(n) + 2 * n


def test_real_ffts_cost_half_the_complex_formula():
    n = 1024
    x = torch.randn(n)
    complex_count = count_flops(torch.fft.fft, x.to(torch.complex64))
    assert count_flops(torch.fft.rfft, x) == complex_count / 2 == 2.5 * n * math.log2(n)
    half_spectrum = torch.fft.rfft(x)
    assert count_flops(torch.fft.irfft, half_spectrum) == complex_count / 2 + n  # + 1/N scaling


# ------------------------------------------------------------------------ linear algebra
def test_solve_with_one_right_hand_side_is_lu_plus_two_triangular_solves():
    n = 100
    a, b = torch.randn(n, n), torch.randn(n)
    counted = count_flops(torch.linalg.solve, a, b)
    assert counted == round(2 / 3 * n**3 + 2 * n**2)
    assert counted >= 2 / 3 * n**3


def test_batched_solve_multiplies_by_the_batch_and_counts_every_right_hand_side():
    batch, n, k = 5, 40, 3
    a, b = torch.randn(batch, n, n), torch.randn(batch, n, k)
    assert count_flops(torch.linalg.solve, a, b) == round(batch * (2 / 3 * n**3 + 2 * n**2 * k))


def test_inverse_lu_and_lu_solve():
    n, k = 50, 4
    a = torch.randn(n, n)
    assert count_flops(torch.linalg.inv, a) == round(2 / 3 * n**3 + 2 * n**3)  # solves A X = I
    assert count_flops(torch.linalg.lu_factor, a) == round(2 / 3 * n**3)
    lu, pivots = torch.linalg.lu_factor(a)
    assert count_flops(torch.linalg.lu_solve, lu, pivots, torch.randn(n, k)) == 2 * n**2 * k


def test_complex_solve_costs_four_real_ones():
    n = 30
    a, b = torch.randn(n, n), torch.randn(n, 2)
    real = count_flops(torch.linalg.solve, a, b)
    cplx = count_flops(torch.linalg.solve, a.to(torch.complex64), b.to(torch.complex64))
    assert cplx == 4 * real


def test_solve_backward_is_one_adjoint_lu_solve_and_a_matmul():
    n = 20
    a = torch.randn(n, n, requires_grad=True)
    b = torch.randn(n, 1)
    x = torch.linalg.solve(a, b)
    g = torch.randn(n, 1)
    # gB = A⁻ᴴ g from the stored LU (2n²), gA = −gB xᵀ (an outer product, 2n² by mm's 2/MAC)
    assert count_flops(x.backward, g) == 2 * n**2 + 2 * n**2 + n**2  # + negation


# ------------------------------------------------------------------------- matrix products
def test_complex_matmul_is_eight_flops_per_multiply_accumulate():
    n = 32
    a, b = torch.randn(n, n, dtype=torch.complex64), torch.randn(n, n, dtype=torch.complex64)
    assert count_flops(torch.matmul, a, b) == 8 * n**3
    assert count_flops(torch.matmul, a.real, b.real) == 2 * n**3
    assert count_flops(torch.einsum, "bij,bjk->bik", a[None], b[None]) == 8 * n**3


def test_real_linear_forward_and_backward_keep_torchs_convention():
    batch, n_in, n_out = 8, 16, 4
    layer = torch.nn.Linear(n_in, n_out)
    x = torch.randn(batch, n_in, requires_grad=True)
    g = torch.randn(batch, n_out)

    def backward() -> None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).backward(g)

    with FlopCounterMode(display=False) as torch_counter:
        layer(x)
    assert count_flops(layer, x) == torch_counter.get_total_flops() == 2 * batch * n_in * n_out
    with FlopCounterMode(display=False) as torch_counter:
        backward()
    # torch: forward + both gradient matmuls; here also the bias gradient, a sum over the batch
    assert count_flops(backward) == torch_counter.get_total_flops() + batch * n_out


# ------------------------------------------------------------------------------ elementwise
def test_exp_and_other_functions_cost_their_documented_constant_per_element():
    x = torch.randn(10, 7)
    n = x.numel()
    assert count_flops(torch.exp, x) == flops.FN * n >= n
    assert count_flops(torch.sigmoid, x) == 13 * n  # 1/(1 + e⁻ˣ): exp, add, divide
    assert count_flops(torch.nn.functional.softplus, x) == 22 * n
    assert count_flops(torch.sqrt, x.abs()) == flops.DIV * n
    assert count_flops(torch.relu, x) == n
    assert count_flops(torch.add, x, x) == n
    assert count_flops(torch.add, x, x, alpha=2) == 2 * n
    assert count_flops(torch.pow, x, 2) == n and count_flops(torch.pow, x, 1.7) == flops.FN * n


def test_complex_elementwise_operations_cost_their_real_operations():
    z = torch.randn(4, 8, dtype=torch.complex64)
    r = torch.randn(4, 8)
    n = z.numel()
    assert count_flops(torch.mul, z, z) == 6 * n  # 4 multiplies, 2 adds
    assert count_flops(torch.mul, z, r) == 2 * n
    assert count_flops(torch.add, z, z) == 2 * n
    assert count_flops(torch.abs, z) == 7 * n  # √(a² + b²)
    assert count_flops(torch.exp, z) == 4 * flops.FN * n


def test_reductions_count_per_input_element():
    x = torch.randn(10, 20)
    assert count_flops(torch.sum, x) == 200
    assert count_flops(torch.amax, x, dim=1) == 200
    assert count_flops(torch.mean, x, dim=0) == 200 + flops.DIV * 20  # + one division per mean
    assert count_flops(torch.var, x, dim=1) == 4 * 200 + 2 * flops.DIV * 10


X = torch.randn(6, 10)  # 6 rows of 10: n = 60 elements
N = X.numel()
LABELS = torch.tensor([0, 3, 9, 1, 2, 2])


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda: F.layer_norm(X, (10,)), 6 * N + 13 * 6),  # + 13 per normalised row
        (lambda: F.layer_norm(X, (10,), torch.ones(10), torch.zeros(10)), 8 * N + 13 * 6),
        (lambda: F.batch_norm(X, None, None, training=True), 6 * N + 13 * 10),
        (lambda: F.batch_norm(X, torch.zeros(10), torch.ones(10)), 2 * N + 9 * 10),
        (lambda: torch.softmax(X, 1), 15 * N),
        (lambda: F.cross_entropy(X, LABELS), 12 * N + 8 * 6 + 6 + flops.DIV),  # + NLL, mean
        (lambda: F.mse_loss(X, X), 3 * N + flops.DIV),
        (lambda: torch.logsumexp(X, 1), 11 * N + 9 * 6),
        (lambda: torch.linalg.vector_norm(X), 2 * N + flops.DIV),
        (lambda: torch.cumsum(X, 0), N),
        (lambda: F.gelu(X), 12 * N),
        (lambda: torch.clamp(X, -1, 1), 2 * N),
        (lambda: X**3, 2 * N),
        (lambda: X.abs() ** 0.5, N + flops.DIV * N),  # abs, then the sqrt special case
        (lambda: torch.lerp(X, X, 0.3), 3 * N),
        (lambda: torch.sort(X, dim=1), round(N * math.log2(10))),
        (lambda: torch.zeros(10).scatter_add(0, LABELS, torch.ones(6)), 6),
        (lambda: torch.cdist(X[:2], X), 2 * 6 * (3 * 10 + flops.DIV)),
        (lambda: torch.linalg.qr(torch.randn(20, 10), mode="r"), round(2 * 20 * 100 - 2 / 3 * 1e3)),
        (lambda: torch.linalg.det(torch.randn(30, 30)), round(2 / 3 * 30**3)),
        (
            lambda: torch.linalg.solve_triangular(torch.eye(30), X[:, :2].repeat(5, 1), upper=True),
            30 * 30 * 2,
        ),
    ],
)
def test_other_formulas_match_their_documented_hand_count(fn, expected):
    assert count_flops(fn) == expected


def test_integer_and_boolean_work_is_not_floating_point():
    labels = torch.randint(0, 5, (100,))
    assert count_flops(lambda: (labels == labels.flip(0)).sum()) == 0


def test_data_movement_counts_zero():
    x = torch.randn(6, 4)

    def movement() -> None:
        y = x.view(4, 6).reshape(24).clone().detach().to(torch.float64)
        torch.cat([y, y])[torch.tensor([0, 3])]
        torch.zeros(3).fill_(2.0).copy_(torch.rand(3))
        torch.randn(5), x.t().contiguous(), x[1:, ::2], torch.stack([x, x])

    assert count_flops(movement) == 0


# ------------------------------------------------------------------------------ optimizers
@pytest.mark.parametrize(
    ("optimizer", "options", "per_element"),
    [
        (torch.optim.Adam, {"foreach": False}, 22),
        (torch.optim.Adam, {"foreach": True}, 22),
        (torch.optim.Adam, {"fused": True}, 22),
        (torch.optim.AdamW, {}, 23),  # + the decoupled decay, param *= 1 − lr·λ
        (torch.optim.AdamW, {"fused": True}, 23),
    ],
)
def test_one_adam_step_matches_a_hand_count(optimizer, options, per_element):
    layer = torch.nn.Linear(10, 3)
    n_elements, n_tensors = 10 * 3 + 3, 2
    step = optimizer(layer.parameters(), **options).step
    layer(torch.randn(4, 10)).sum().backward()
    # lerp 3, mul 1, addcmul 3, sqrt 4, ÷ bias correction 4, + eps 1, addcdiv 6; step += 1
    assert count_flops(step) == per_element * n_elements + n_tensors


def test_sgd_steps_match_a_hand_count():
    n_elements = 10 * 3 + 3
    layer = torch.nn.Linear(10, 3)
    layer(torch.randn(4, 10)).sum().backward()
    plain = torch.optim.SGD(layer.parameters(), lr=0.1)
    assert count_flops(plain.step) == 2 * n_elements  # param −= lr·grad
    momentum = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9)
    assert count_flops(momentum.step) == 2 * n_elements  # first step: buffer = grad
    assert count_flops(momentum.step) == 4 * n_elements  # buffer = 0.9·buffer + grad, then 2


# ----------------------------------------------------------------------- no operator missed
@pytest.mark.parametrize(
    ("rule", "system", "params"),
    [
        ("phyll", "acoustic", {}),
        ("phyll-unsup", "acoustic", {}),
        ("ff", "acoustic", {}),
        ("dfa", "acoustic", {}),
        ("zo", "acoustic", {"loss": "global"}),
        ("zo", "acoustic", {"loss": "local"}),
        ("pat", "acoustic", {"twin_samples": 20, "twin_epochs": 2, "twin_hidden": [8]}),
        ("backprop-ideal", "microwave", {}),  # the simulator's linear solves are digital here
        ("backprop-ideal", "optical", {}),  # and its FFTs
    ],
)
def test_training_runs_no_operator_without_a_formula(rule, system, params, monkeypatch, caplog):
    monkeypatch.setattr(flops, "_RULES", {})  # classify every operator afresh
    config = TrainConfig(
        dataset="vowels", rule=rule, system=system, width=8, measurements=16, rule_params=params
    )
    with caplog.at_level(logging.WARNING, logger="phyll.flops"):
        exp = build_experiment(config)
        meter = Meter()
        with meter.measure():
            exp.rule.train_step(exp.splits.x_train[:8], exp.splits.y_train[:8])
            exp.rule.predict(exp.splits.x_val[:8])
    assert meter.costs.digital_flops > 0
    assert not [r.getMessage() for r in caplog.records if r.name == "phyll.flops"]
