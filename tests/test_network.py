"""Network structure: embedding, drive mapping, conditioning, FLOPs that scale with width."""

from __future__ import annotations

import pytest
import torch

from phyll.accounting import Meter
from phyll.network import MeasurementConditioner, build_network
from phyll.registry import make_system
from tests.conftest import matmul_flops, numpy_square_law


def small_net(width: int = 8, blocks: int = 2, **kw):
    systems = [numpy_square_law(6 if i == 0 else width, 10, seed=i) for i in range(blocks)]
    return build_network(systems, n_features=3, n_classes=3, width=width, **kw)


def test_label_embedding_appends_one_hot_or_neutral_code():
    net = small_net()
    x = torch.rand(2, 3)
    emb = net.embed(x, torch.tensor([2, 0]))
    assert torch.equal(emb[:, 3:], torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    assert torch.allclose(net.embed(x, None)[:, 3:], torch.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"expected data of shape \[batch, 3\]"):
        net.embed(torch.rand(2, 4), None)


def test_drive_is_mapped_into_the_system_range_and_padded():
    system = make_system("acoustic", 12, 10)
    net = build_network([system], n_features=3, n_classes=3, width=4)
    drive = net.blocks[0].drive(net.embed(torch.rand(5, 3), torch.tensor([0, 1, 2, 0, 1])))
    assert drive.shape == (5, 12)
    assert drive.min() >= 0 and drive.max() <= 1
    assert torch.all(drive[:, 6:] == 0)  # unused speakers switched off


def test_hidden_blocks_normalise_unbounded_representations():
    net = small_net()
    drive = net.blocks[1].drive(100 * torch.rand(4, 8))
    assert torch.allclose(drive.amax(1), torch.ones(4))


def test_mismatched_blocks_are_refused():
    with pytest.raises(ValueError, match="system has only 4 drive channels"):
        build_network([numpy_square_law(4, 5)], n_features=3, n_classes=3, width=2)


def test_forward_gives_one_output_per_block_and_queries_each_system_once():
    net = small_net(blocks=3)
    outputs = net(net.embed(torch.rand(5, 3), None))
    assert [tuple(o.shape) for o in outputs] == [(5, 8)] * 3
    assert [s.queries for s in net.systems] == [5, 5, 5]
    assert all((o >= 0).all() for o in outputs)  # |·| activation


def test_no_physics_ablation_never_queries_the_system():
    net = small_net(use_physics=False)
    net(net.embed(torch.rand(5, 3), None))
    assert [s.queries for s in net.systems] == [0, 0]


def test_digital_flops_scale_with_width_as_the_matmuls_predict():
    def flops(width: int) -> int:
        net = small_net(width=width)
        meter = Meter()
        with meter.measure():
            net(net.embed(torch.rand(4, 3), None))
        return matmul_flops(meter)

    # block 1: (10 + 6) → w ; block 2: (10 + w) → w ; 2 FLOPs per MAC, batch 4
    for width in (4, 8, 16):
        assert flops(width) == 2 * 4 * ((16 * width) + (10 + width) * width)


def test_standardize_conditioner_uses_first_batch_then_running_stats():
    cond = MeasurementConditioner(3)
    z = torch.rand(64, 3) * 5 + 2
    out = cond(z)
    assert torch.allclose(out.mean(0), torch.zeros(3), atol=1e-5)
    cond.eval()
    assert torch.allclose(cond(z), out)
    assert torch.allclose(MeasurementConditioner(3, "unit-norm")(z).norm(dim=1), torch.ones(64))
