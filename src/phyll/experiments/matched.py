"""Digital controls of matched cost: the hidden width of a digital MLP whose digital FLOPs per
inference equal a physical network's, found by instrumentation.

A physical layer pays off only if it does work that digital hardware would otherwise pay for,
so the fair digital control of a PNN is not one of its *widths* but one of its *cost*: the MLP
(``backprop-ideal`` on the same blocks with the physics removed) whose prediction of one sample
costs the same digital FLOPs as the PNN's, its physical passes excluded (:mod:`phyll.accounting`).
Both counts come from :class:`~phyll.accounting.Meter` around ``rule.predict`` of one test
sample on freshly built (untrained) models: a prediction's work depends on the shapes, not the
weights. An MLP's count is a polynomial of degree ≤ 2 in its width (one ``width × width``
product per hidden block after the first), so three counts fix it exactly; the width solving
it is rounded and its count checked by a last measurement.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache

import torch

from phyll.accounting import Meter
from phyll.data import Dataset, load_dataset
from phyll.errors import ConfigError
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig

#: the widths whose counts fix the MLP's polynomial
PROBE_WIDTHS = (8, 16, 32)
#: the largest MLP width the solver proposes
MAX_WIDTH = 1 << 16


def mlp_config(base: TrainConfig, width: int) -> TrainConfig:
    """The digital MLP control of ``base`` at ``width``: in-silico backprop on the same blocks
    and data with the physical measurement removed."""
    return dataclasses.replace(base, rule="backprop-ideal", use_physics=False, width=width)


def inference_flops(config: TrainConfig, dataset: Dataset | None = None) -> int:
    """Digital FLOPs of predicting one test sample with ``config``'s model (physics excluded)."""
    exp = build_experiment(config, dataset=dataset)
    meter = Meter()
    with torch.no_grad(), meter.measure():
        exp.rule.predict(exp.splits.x_test[:1])
    return meter.costs.digital_flops


@cache
def _dataset(name: str, seed: int, data_path: str | None, label_column: str) -> Dataset:
    return load_dataset(name, seed=seed, data_path=data_path, label_column=label_column)


def matched_mlp_width(base: TrainConfig, target_flops: int | None = None) -> tuple[int, int]:
    """``(width, its FLOPs per inference)`` of the MLP control of ``base`` closest to
    ``target_flops`` (default: ``base``'s own count, as PhyLL on its physical network)."""
    dataset = _dataset(base.dataset, base.seed, base.data_path, base.label_column)
    if target_flops is None:
        target_flops = inference_flops(dataclasses.replace(base, rule="phyll"), dataset)
    counts = [inference_flops(mlp_config(base, w), dataset) for w in PROBE_WIDTHS]
    a, b, c = _quadratic(PROBE_WIDTHS, counts)
    width = _solve(a, b, c - target_flops)
    candidates = {max(1, min(MAX_WIDTH, w)) for w in (math.floor(width), math.ceil(width))}
    measured = {w: inference_flops(mlp_config(base, w), dataset) for w in candidates}
    best = min(measured, key=lambda w: (abs(measured[w] - target_flops), w))
    return best, measured[best]


def _quadratic(xs: tuple[int, ...], ys: list[int]) -> tuple[float, float, float]:
    """The coefficients of the parabola through three points."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    d01, d12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    a = (d12 - d01) / (x2 - x0)
    b = d01 - a * (x0 + x1)
    return a, b, y0 - a * x0 * x0 - b * x0


def _solve(a: float, b: float, c: float) -> float:
    """The positive root of ``a·w² + b·w + c`` (``a ≥ 0``, ``b > 0``: the count grows)."""
    if b <= 0 and a <= 0:
        raise ConfigError("the MLP's FLOPs do not grow with its width: nothing to match")
    if abs(a) < 1e-12:
        return -c / b
    return (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
