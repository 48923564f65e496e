"""The random-features control computes |R a|² / n as a real product of a real drive: the same
numbers as the complex product, at half its FLOPs."""

from __future__ import annotations

import torch

from phyll.flops import count_flops
from phyll.systems.random_features import RandomFeatures


def test_the_real_product_equals_the_complex_one_at_half_the_flops():
    system = RandomFeatures(12, 40, seed=3)
    drive = torch.rand(5, 12)
    pairs = torch.randn(12, 40, 2, generator=torch.Generator().manual_seed(3))
    complex_map = torch.view_as_complex(pairs)
    reference = (drive.to(torch.complex64) @ complex_map).abs() ** 2 / 12
    assert torch.allclose(system(drive), reference, rtol=1e-5, atol=1e-6)
    matmul = 2 * 5 * 12 * 2 * 40  # a real product with 2 × 40 columns
    assert count_flops(system._measure, drive) == matmul + 5 * 40 * (2 + 2 + 4)
    assert count_flops(lambda d: d.to(torch.complex64) @ complex_map, drive) == 2 * matmul
