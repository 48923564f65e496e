"""The paper's optical architecture options: labels written into the image, camera pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from phyll.accounting import Meter
from phyll.cli import build_parser
from phyll.data import from_arrays
from phyll.errors import ConfigError
from phyll.experiments.arguments import config_from_args
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.train import train
from phyll.network import PhysicalBlock, overlay_labels
from phyll.systems.acoustic import AcousticCavity
from phyll.systems.faults import MeasurementNoise
from phyll.systems.optical import OpticalSystem
from phyll.systems.random_features import RandomFeatures


def bars(n: int = 360, side: int = 12, seed: int = 0):
    """Noisy images of one bright vertical bar whose column band is the class (3 classes)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = 0.15 * rng.random((n, side, side))
    for i, label in enumerate(y):
        column = 2 + 3 * label + rng.integers(0, 2)
        x[i, 3:, column] = 1.0
    return from_arrays(x.reshape(n, -1).astype(np.float32), y, image_shape=(side, side), seed=0)


def test_overlay_lights_the_labels_segment_of_the_top_two_rows_and_keeps_the_rest():
    x = torch.rand(3, 6 * 7)
    code = F.one_hot(torch.tensor([0, 2, 1]), 3).float()
    out = overlay_labels(x, code, (6, 7), scale=0.5).reshape(3, 6, 7)
    for i, label in enumerate([0, 2, 1]):
        band = out[i, :2, :6].reshape(2, 3, 2)  # 3 segments of 7 // 3 = 2 pixels
        assert torch.all(band[:, label] == 0.5)
        assert torch.all(band[:, [c for c in range(3) if c != label]] == 0)
    assert torch.equal(out[:, :2, 6], x.reshape(3, 6, 7)[:, :2, 6])  # right of the segments
    assert torch.equal(out[:, 2:], x.reshape(3, 6, 7)[:, 2:])  # below the band
    neutral = overlay_labels(x, torch.full((3, 3), 1 / 3), (6, 7), scale=1.0).reshape(3, 6, 7)
    assert torch.allclose(neutral[:, :2, :6], torch.tensor(1 / 3))


def test_overlay_drives_the_image_pixels_only_and_its_labels_are_the_ones_trained():
    data = bars()
    exp = build_experiment(
        TrainConfig(system="optical", label_encoding="overlay", measurements=144, epochs=1),
        dataset=data,
    )
    net = exp.model.network
    assert net.blocks[0].in_features == data.n_features == 144  # no appended channels
    x = exp.splits.x_train[:4]
    positive = net.embed(x, torch.tensor([0, 1, 2, 0])).reshape(4, 12, 12)
    assert positive[1, 0, 4:8].tolist() == [1.0] * 4 and positive[1, 0, :4].sum() == 0
    appended = build_experiment(TrainConfig(system="optical", epochs=1), dataset=data)
    assert appended.model.network.blocks[0].in_features == 144 + 3


def test_phyll_learns_with_labels_in_the_image():
    config = TrainConfig(
        system="optical", label_encoding="overlay", measurements=144, width=32, epochs=6
    )
    summary = train(config, None, dataset=bars(), progress=False)
    assert summary["test_accuracy"] > 0.8  # chance: 1/3


@pytest.mark.parametrize(
    "dataset, message", [("vowels", "no image shape"), ("digits", "at least as wide")]
)
def test_an_overlay_that_does_not_fit_the_data_is_refused(dataset, message):
    with pytest.raises(ConfigError, match=message):
        build_experiment(TrainConfig(dataset=dataset, label_encoding="overlay", epochs=1))


def test_pooling_averages_the_camera_image_like_avg_pool2d_and_counts_its_flops():
    system = OpticalSystem(12, 64, seed=0)  # 8 × 8 camera, every pixel read
    assert system.output_grid == (8, 8)
    block = PhysicalBlock(system, 12, 5, pool=(3, 2))
    assert block.pooled_grid == (3, 3)
    assert block.conditioner.running_mean.numel() == 9 and block.linear.in_features == 9 + 12
    z = torch.rand(4, 64)
    expected = F.avg_pool2d(z.reshape(4, 1, 8, 8), 3, 2).flatten(1)
    meter = Meter()
    with meter.measure():
        pooled = block.pooled(z)
    assert torch.allclose(pooled, expected)
    assert meter.costs.digital_flops >= 4 * 9 * 9  # 9 sums of 9 pixels per sample
    y = block(torch.rand(4, 12))
    assert y.shape == (4, 5)


def test_pooling_needs_an_image_of_measurements():
    with pytest.raises(ConfigError, match="no output_grid"):
        PhysicalBlock(AcousticCavity(4, 16, seed=0), 4, 3, pool=(2, 2))
    subset = OpticalSystem(12, 50, grid=8, seed=0)  # a scattered subset of pixels
    assert subset.output_grid is None
    with pytest.raises(ConfigError, match="no output_grid"):
        PhysicalBlock(subset, 12, 3, pool=(2, 2))
    with pytest.raises(ConfigError, match="larger than"):
        PhysicalBlock(OpticalSystem(12, 64, seed=0), 12, 3, pool=(9, 1))


def test_the_grid_passes_through_fault_wrappers_and_the_random_features_control_has_one():
    assert MeasurementNoise(OpticalSystem(12, 64, seed=0), std=0.01).output_grid == (8, 8)
    assert RandomFeatures(12, 64).output_grid == (8, 8)
    assert RandomFeatures(12, 63).output_grid is None


def test_command_line_options_reach_the_config_and_bad_values_are_refused():
    args = build_parser().parse_args(
        ["train", "--label-encoding", "overlay", "--pool", "3", "--pool-stride", "2"]
    )
    config = config_from_args(args)
    assert (config.label_encoding, config.pooling) == ("overlay", (3, 2))
    assert TrainConfig(pool=2).pooling == (2, 2) and TrainConfig().pooling is None
    for bad in ({"label_encoding": "stripes"}, {"pool": 0}, {"pool_stride": True}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)
