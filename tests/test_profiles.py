"""Defaults by dataset kind, random-shift augmentation and the cosine learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from phyll.data import from_arrays
from phyll.data.augment import RandomShift
from phyll.errors import ConfigError
from phyll.experiments.build import LearningRateSchedule, build_experiment
from phyll.experiments.config import PROFILES, TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingInterrupted, resume, train
from tests.conftest import sigint_factory
from tests.test_resume import assert_identical_runs


def test_each_dataset_kind_gets_its_profile_and_explicit_values_win():
    image, tabular = TrainConfig(dataset="mnist5k"), TrainConfig(dataset="vowels")
    for name, value in PROFILES["image"].items():
        assert getattr(image, name) == value  # acoustic: the kind's profile as it is
        assert getattr(TrainConfig(dataset="mnist5k:14x14"), name) == value
    for name, value in PROFILES["tabular"].items():
        assert getattr(tabular, name) == value
    assert TrainConfig(dataset="mnist5k", width=32, epochs=2).width == 32
    assert TrainConfig(dataset="mnist5k", augment_shift=0).augment_shift == 0
    assert image.system_params == {}  # acoustic: no profile parameters
    assert TrainConfig(dataset="mnist5k", system="optical").measurements == 4096
    assert TrainConfig(dataset="mnist5k", system="optical", measurements=64).measurements == 64


def test_image_profile_gives_phyll_three_negatives_under_the_users_own_rule_parameters():
    image = TrainConfig(dataset="mnist5k", system="optical")
    assert image.resolved_rule_params() == {"negatives": 3, "theta": 20.0}
    assert image.rule_params == {}  # resolved when the rule is built, not recorded as the user's
    mine = TrainConfig(dataset="mnist5k", rule_params={"negatives": 1, "lr": 0.01})
    assert mine.resolved_rule_params() == {"negatives": 1, "theta": 20.0, "lr": 0.01}
    assert TrainConfig(dataset="vowels").resolved_rule_params() == {}
    assert TrainConfig(dataset="mnist5k", rule="pat").resolved_rule_params() == {}
    built = build_experiment(
        TrainConfig(dataset="mnist5k:14x14", epochs=1, width=16, measurements=32),
        dataset=from_arrays(
            torch.rand(60, 196), torch.arange(60) % 10, name="tiny", image_shape=(14, 14)
        ),
    )
    assert built.rule.params.negatives == 3 and built.rule.params.theta == 20.0


def test_image_profile_sets_the_optical_encoding_under_the_users_own_parameters():
    assert TrainConfig(dataset="mnist5k", system="optical").system_params == {
        "encoding": "amplitude"
    }
    mine = TrainConfig(dataset="mnist5k", system="optical", system_params={"encoding": "phase"})
    assert mine.system_params == {"encoding": "phase"}
    assert TrainConfig(dataset="vowels", system="optical").system_params == {}


def test_a_saved_config_round_trips_unchanged():
    config = TrainConfig(dataset="mnist5k", system="optical", seed=3)
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"augment_shift": -1}, "augment_shift"),
        ({"augment_shift": 9}, "augment_shift"),
        ({"augment_shift": True}, "augment_shift"),
        ({"lr_schedule": "step"}, "lr_schedule"),
    ],
)
def test_bad_augmentation_and_schedule_options_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**overrides)


def test_random_shift_moves_each_image_by_at_most_the_shift_filling_with_dark():
    torch.manual_seed(0)
    x = torch.rand(64, 5 * 7)
    out = RandomShift((5, 7), 1, seed=0)(x)
    padded = F.pad(x.view(-1, 5, 7), (1, 1, 1, 1))
    shifts = {
        (dy, dx): padded[:, dy : dy + 5, dx : dx + 7].reshape(64, -1)
        for dy, dx in itertools.product(range(3), repeat=2)
    }
    matched = []
    for i in range(64):
        found = [k for k, v in shifts.items() if torch.equal(out[i], v[i])]
        assert found, f"image {i} is not a ≤1-pixel shift of its input"
        matched.append(found[0])
    assert len(set(matched)) > 5  # shifts differ per sample
    again = RandomShift((5, 7), 1, seed=0)(x)
    assert torch.equal(out, again)  # seeded


def test_random_shift_state_continues_the_same_stream():
    x = torch.rand(16, 36)
    a = RandomShift((6, 6), 2, seed=1)
    a(x)
    b = RandomShift((6, 6), 2, seed=99)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a(x), b(x))
    with pytest.raises(ConfigError, match=r"\[batch, 36\]"):
        a(torch.rand(4, 35))


def test_shifts_need_an_image_dataset():
    config = TrainConfig(dataset="vowels", augment_shift=1, epochs=1)
    with pytest.raises(ConfigError, match="no image shape"):
        build_experiment(config)
    assert build_experiment(TrainConfig(dataset="digits", augment_shift=1)).augment is not None


def test_cosine_schedule_scales_every_optimizer_of_the_rule():
    schedule = LearningRateSchedule("cosine", 4)
    assert [schedule.scale(e) for e in range(4)] == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    )
    config = TrainConfig(dataset="vowels", epochs=1, lr_schedule="cosine", rule_params={"lr": 0.02})
    rule = build_experiment(config).rule
    assert len(rule.optimizers_made) == len(rule.network.blocks)
    rule.scale_learning_rate(0.25)
    for made in rule.optimizers_made:
        assert [g["lr"] for g in made.param_groups] == [0.005]


def test_a_run_with_shifts_and_cosine_schedule_resumes_bit_identically(tmp_path):
    x = torch.rand(240, 36)
    y = (x[:, :18].sum(1) > x[:, 18:].sum(1)).long()
    data = from_arrays(x.numpy(), y.numpy(), image_shape=(6, 6))
    config = TrainConfig(
        dataset="python:shifted",
        epochs=3,
        width=16,
        measurements=16,
        augment_shift=1,
        lr_schedule="cosine",
        checkpoint_every=2,
    )
    reference = tmp_path / "reference"
    train(config, reference, progress=False, dataset=data, system_factory=sigint_factory(config))
    final = RunFolder(reference).load(reference / "checkpoint.pt")
    lr = final["rule"]["optimizers"][0]["param_groups"][0]["lr"]
    assert lr == pytest.approx(0.01 * 0.5 * (1 + math.cos(math.pi * 2 / 3)))
    out = tmp_path / "interrupted"
    with pytest.raises(TrainingInterrupted):
        train(
            config,
            out,
            progress=False,
            dataset=data,
            system_factory=sigint_factory(config, 15),
        )
    resume(out, progress=False, dataset=data, system_factory=sigint_factory(config))
    assert_identical_runs(reference, out)


def test_the_schedule_also_scales_an_unsupervised_readout_with_its_own_rate():
    config = TrainConfig(
        dataset="vowels", rule="phyll-unsup", epochs=1, rule_params={"readout_lr": 0.04}
    )
    rule = build_experiment(config).rule
    assert rule.head_optimizer in rule.optimizers_made
    rule.scale_learning_rate(0.5)
    assert rule.head_optimizer.param_groups[0]["lr"] == pytest.approx(0.02)


def test_images_evaluate_a_validation_subsample_per_epoch_and_tabular_data_all():
    assert TrainConfig(dataset="mnist").eval_samples == 5000
    assert TrainConfig(dataset="vowels").eval_samples == 0  # 0: every validation sample
    assert TrainConfig(dataset="mnist", eval_samples=0).eval_samples == 0
    with pytest.raises(ConfigError, match="eval_samples"):
        TrainConfig(eval_samples=-1)
