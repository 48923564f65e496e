"""The black-box contract every physical system shares (validation, counting, errors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from phyll.registry import make_system
from phyll.systems import CallableSystem, DriveError, NonFiniteMeasurementError
from phyll.systems.base import PhysicalSystemError


def test_drive_of_wrong_shape_is_refused_with_expected_shape():
    system = make_system("acoustic", 5, 8)
    with pytest.raises(DriveError, match=r"expects drive of shape \[batch, 5\], got \[3, 4\]"):
        system(torch.rand(3, 4))
    with pytest.raises(DriveError, match="shape"):
        system(torch.rand(5))


def test_nonfinite_drive_is_refused():
    system = make_system("acoustic", 5, 8)
    drive = torch.rand(2, 5)
    drive[1, 2] = float("nan")
    with pytest.raises(DriveError, match="NaN or inf"):
        system(drive)


def test_out_of_range_drive_is_clipped_or_refused_as_declared():
    clip = CallableSystem(lambda d: d.copy(), 3, 3, out_of_range="clip")
    out = clip(torch.tensor([[-0.5, 0.5, 1.5]]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.5, 1.0]]))
    strict = CallableSystem(lambda d: d.copy(), 3, 3, out_of_range="raise")
    with pytest.raises(DriveError, match=r"outside .* range \[0.0, 1.0\]"):
        strict(torch.tensor([[-0.5, 0.5, 1.5]]))


def test_query_counter_counts_samples_driven():
    system = make_system("acoustic", 4, 8)
    system(torch.rand(7, 4))
    system(torch.rand(3, 4))
    assert system.queries == 10


def test_nan_measurement_raises_and_names_the_system():
    def broken(drive: np.ndarray) -> np.ndarray:
        out = drive.sum(1, keepdims=True).repeat(2, 1)
        out[0, 0] = np.nan
        return out

    system = CallableSystem(broken, 3, 2)
    with pytest.raises(
        NonFiniteMeasurementError, match="CallableSystem returned NaN/inf in 1 of 4"
    ):
        system(torch.rand(4, 3))


def test_wrong_measurement_shape_is_an_error():
    system = CallableSystem(lambda d: d[:, :1], 3, 2)
    with pytest.raises(PhysicalSystemError, match=r"returned shape \[4, 1\], expected \[4, 2\]"):
        system(torch.rand(4, 3))


def test_callable_system_is_a_true_black_box():
    system = CallableSystem(lambda d: d**2, 3, 3)
    drive = torch.rand(2, 3, requires_grad=True)
    out = system(drive)
    assert not out.requires_grad  # no autograd graph can cross NumPy
    assert system.differentiable is False


def test_unknown_system_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown system 'laser'; choose one of: acoustic"):
        make_system("laser", 3, 3)
