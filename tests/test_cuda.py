"""CUDA: every system, fault wrapper and rule on the GPU, in agreement with the CPU.

Every test here is marked ``cuda`` and skips with a reason where ``torch.cuda.is_available()``
is false (``python -m pytest -m cuda`` runs them alone). Device placement is also checked
without a GPU by tests/test_device.py.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest
import torch

from phyll.engine import Engine
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.predict import load_run
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingInterrupted, resume, train
from phyll.registry import make_system
from phyll.systems import CallableSystem, NonFiniteMeasurementError
from phyll.systems.faults import FAULTS
from tests.conftest import numpy_square_law, sigint_factory

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU (torch.cuda.is_available() is false)",
    ),
]

#: the simulated systems, noise-free (their nominal design) so that CPU and GPU must agree
NOMINAL = {
    "acoustic": lambda device: make_system("acoustic", 24, 32, seed=5, device=device).nominal(),
    "acoustic-phase": lambda device: make_system(
        "acoustic", 24, 32, seed=5, device=device, encoding="phase", speaker_saturation=0.5
    ).nominal(),
    "microwave": lambda device: make_system("microwave", 16, 24, seed=5, device=device).nominal(),
    "microwave-1bit": lambda device: make_system(
        "microwave", 16, 24, seed=5, device=device, control="1-bit"
    ).nominal(),
    "optical": lambda device: make_system("optical", 24, 32, seed=5, device=device).nominal(),
    "optical-shg-amplitude": lambda device: make_system(
        "optical", 24, 32, seed=5, device=device, nonlinearity="shg", encoding="amplitude"
    ).nominal(),
    "optical-linear": lambda device: make_system(
        "optical", 24, 32, seed=5, device=device, nonlinearity="none"
    ).nominal(),
    "random-features": lambda device: make_system("random-features", 24, 32, device=device),
}
#: measurements are in full-scale units (order 1); float32 kernels of two devices agree to
#: ~1e-5, the microwave cavity's complex64 solves to about its condition number times that
TOLERANCE = {"rtol": 2e-3, "atol": 2e-4}


def drive(n: int = 64, width: int = 24) -> torch.Tensor:
    return torch.rand(n, width, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", sorted(NOMINAL))
def test_every_system_agrees_on_cpu_and_gpu(name):
    cpu, gpu = NOMINAL[name]("cpu"), NOMINAL[name]("cuda")
    x = drive(width=cpu.n_inputs)
    expected, out = cpu(x), gpu(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), expected, **TOLERANCE)
    # the physics' perturbation is rebuilt on the device too
    if cpu.perturbable:
        cpu.perturb(cpu.typical_perturbation)
        gpu.perturb(gpu.typical_perturbation)
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), **TOLERANCE)


@pytest.mark.parametrize("name", ["acoustic", "microwave", "optical"])
def test_noisy_systems_keep_their_noise_stream_on_the_gpu(name):
    system = make_system(name, 16, 24, seed=2, device="cuda")
    assert system._noise.device.type == "cuda"
    x = drive(8, 16).cuda()
    first, second = system(x), system(x)
    assert first.device.type == "cuda" and not torch.equal(first, second)  # noise moves on
    state = system.state_dict()
    third = system(x)
    system.load_state_dict(state)
    assert torch.equal(system(x), third)  # the GPU stream restores exactly


def test_a_callable_system_serves_a_gpu_network():
    host = numpy_square_law(16, 24)
    gpu = CallableSystem(host.fn, 16, 24, device="cuda")  # NumPy physics, GPU measurements
    out = gpu(drive(8, 16).cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), host(drive(8, 16)), **TOLERANCE)
    assert gpu.emulation_flops_per_query is None  # a black box: nothing to emulate


#: each fault with options that act on every call; those drawn on the host agree across devices
FAULT_OPTIONS = {
    "quantize": {"bits": 2},
    "drift": {"std": 0.5, "per_queries": 10, "target": "gain"},
    "step": {"strength": 0.5, "at_query": 0, "target": "gain"},
    "latency": {"per_call_s": 0.001},
    "nan-bursts": {"rate": 0.0},
}


@pytest.mark.parametrize("fault", sorted(FAULT_OPTIONS))
def test_fault_wrappers_agree_on_cpu_and_gpu(fault):
    cpu = FAULTS[fault](NOMINAL["acoustic"]("cpu"), **FAULT_OPTIONS[fault])
    gpu = FAULTS[fault](NOMINAL["acoustic"]("cuda"), **FAULT_OPTIONS[fault])
    x = drive()
    for _ in range(2):
        out = gpu(x.cuda())
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), cpu(x), **TOLERANCE)


def test_measurement_noise_and_nan_bursts_on_the_gpu():
    noisy = FAULTS["noise"](NOMINAL["acoustic"]("cuda"), std=0.05)
    assert noisy._rng.device.type == "cuda"  # drawn where the measurement is
    clean = NOMINAL["acoustic"]("cuda")(drive().cuda())
    out = noisy(drive().cuda())
    assert out.device.type == "cuda"
    assert 0.03 < (out - clean).std().item() < 0.07
    bursts = FAULTS["nan-bursts"](NOMINAL["acoustic"]("cuda"), rate=1.0)
    with pytest.raises(NonFiniteMeasurementError, match="NaN"):
        bursts(drive().cuda())


SMALL = dict(dataset="vowels", epochs=2, blocks=2, width=16, measurements=24, batch_size=32)
RULES = {
    "phyll": {},
    "phyll-readout": {"rule": "phyll", "rule_params": {"prediction": "readout"}},
    "phyll-unsup": {"rule": "phyll-unsup"},
    "ff": {"rule": "ff"},
    "pat": {"rule": "pat", "rule_params": {"twin_samples": 128, "twin_epochs": 3}},
    "backprop-ideal": {"rule": "backprop-ideal"},
    "backprop-transfer": {"rule": "backprop-transfer"},
    "linear": {"rule": "linear", "use_physics": False},
    "dfa": {"rule": "dfa"},
    "zo-global": {"rule": "zo", "rule_params": {"loss": "global"}},
    "zo-local": {"rule": "zo", "rule_params": {"loss": "local"}},
}
COUNTS = ("physical_queries", "offloaded_flops", "digital_flops")


@pytest.mark.parametrize("case", sorted(RULES))
def test_training_on_the_gpu_costs_what_it_costs_on_the_cpu(case):
    gpu = train(TrainConfig(**SMALL, **RULES[case], device="cuda"), progress=False)
    cpu = train(TrainConfig(**SMALL, **RULES[case], device="cpu"), progress=False)
    for quantity in COUNTS:
        for phase in ("", "_setup", "_training", "_evaluation"):
            assert gpu[quantity + phase] == cpu[quantity + phase], quantity + phase
    assert gpu["queries_per_system"] == cpu["queries_per_system"]
    assert gpu["test_accuracy"] is not None


@pytest.mark.parametrize("case", ["phyll", "phyll-unsup", "pat", "backprop-ideal"])
def test_state_stays_on_the_gpu(case):
    exp = build_experiment(TrainConfig(**SMALL, **RULES[case], device="cuda"))
    engine = Engine(exp.model, exp.rule, exp.splits, epochs=1, batch_size=32)
    exp.rule.setup()
    engine.train_epoch()
    assert all(t.device.type == "cuda" for t in exp.model.state_dict().values())
    assert exp.rule.generator.device.type == "cuda"
    for tensor in getattr(exp.rule, "references", []):
        assert tensor.device.type == "cuda"
    twins, data = getattr(exp.rule, "twins", []), getattr(exp.rule, "_pairs", [])
    for twin, pairs in zip(twins, data, strict=True):
        assert next(twin.parameters()).device.type == "cuda"
        assert all(t.device.type == "cuda" for t in pairs)
    assert exp.rule.predict(exp.splits.x_val).device.type == "cuda"
    first = exp.model.blocks[0]  # its drive is the embedded data
    z = first.measure(exp.model.network.embed(exp.splits.x_val, None))
    assert z.device.type == "cuda"


def test_a_phyll_step_synchronises_only_for_the_contract_and_the_loss():
    exp = build_experiment(TrainConfig(**SMALL, device="cuda"))
    x, y = exp.splits.x_train[:32], exp.splits.y_train[:32]
    exp.rule.train_step(x, y)  # the optimizers' state exists from here on
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exp.rule.train_step(x, y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    # per block call: the drive's and the measurement's finiteness checks (and the explicit
    # synchronisation before the physics); per step: the loss read once
    assert len(syncs) <= 3 * len(exp.model.blocks) + 1, [str(w.message) for w in syncs]


SMALL_RESUME = dict(dataset="vowels", epochs=3, width=24, measurements=24, checkpoint_every=4)


@pytest.mark.parametrize("rule", ["phyll", "pat"])
def test_a_gpu_run_resumes_on_the_gpu_and_loads_on_the_cpu(tmp_path, rule):
    params = RULES[rule].get("rule_params", {})
    config = TrainConfig(**SMALL_RESUME, rule=rule, rule_params=params, device="cuda")
    reference = tmp_path / "reference"
    train(config, reference, progress=False, system_factory=sigint_factory(config))
    out = tmp_path / "interrupted"
    splits = build_experiment(config).splits
    steps = math.ceil(len(splits.y_train) / config.batch_size)
    at_call = steps + math.ceil(len(splits.y_val) / 512) + 3  # step 3 of epoch 2
    with pytest.raises(TrainingInterrupted):
        train(config, out, progress=False, system_factory=sigint_factory(config, at_call))
    resume(out, progress=False, system_factory=sigint_factory(config))
    a = RunFolder(reference).read_json(reference / "summary.json")
    b = RunFolder(out).read_json(out / "summary.json")
    for key in ("physical_queries", "digital_flops", "offloaded_flops", "queries_per_system"):
        assert a[key] == b[key], key
    wa = RunFolder(reference).load(reference / "model.pt")["model"]
    wb = RunFolder(out).load(out / "model.pt")["model"]
    for k in wa:  # loaded on the host (map_location); GPU kernels need not be bitwise equal
        assert wb[k].device.type == "cpu"
        torch.testing.assert_close(wb[k], wa[k], rtol=1e-4, atol=1e-5)
    on_cpu = dataclasses.replace(config, device="cpu")
    loaded = load_run(out, device="cpu", system_factory=sigint_factory(on_cpu))
    assert next(loaded.model.parameters()).device.type == "cpu"
    x = splits.x_test.cpu()
    assert loaded.scores_of(x).shape == (len(x), len(loaded.class_names))
