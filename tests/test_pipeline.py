"""``--pipeline ray``: every block on its own Ray actor.

Without Ray: what cannot pipeline is refused in one line, options and per-block addresses, the
worker's ordering check. On one shared local Ray instance (skipped where the extra is absent):
a 2-block pipeline is the sequential run bit for bit (async and ``--pipeline-sync``), its costs
add up, resume mid-epoch and a killed actor continue it exactly, a faulty system stops it as
sequentially, ``phyll compare`` and ``phyll report`` take it.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import sys
from pathlib import Path

import pytest
import torch

from phyll.cli import build_parser, main
from phyll.engine import Callback, TrainingError, TrainingInterrupted
from phyll.errors import ConfigError
from phyll.experiments.build import build_experiment
from phyll.experiments.compare import entry_config
from phyll.experiments.config import TrainConfig
from phyll.experiments.pipeline import (
    ActorDied,
    PipelineError,
    actors,
    pipeline_refusal,
    sequential_if_needed,
)
from phyll.experiments.pipeline.setup import worker_specs
from phyll.experiments.pipeline.worker import BlockWorker, WorkerState, to_wire
from phyll.experiments.sizing import block_params
from phyll.experiments.sweep import sweep_of
from phyll.experiments.train import resume, train
from phyll.learning import RULES
from phyll.learning.ff import ForwardForward
from phyll.learning.local import LocalContrastiveRule
from phyll.machine import available_cores
from phyll.systems import AcousticCavity
from tests.test_remote_protocol import ThreadServers

SMALL = dict(dataset="vowels", epochs=3, blocks=2, width=16, measurements=24, checkpoint_every=5)
#: what must be equal between a pipelined and a sequential run
SAME = (
    "test_accuracy",
    "val_accuracy",
    "best_epoch",
    "queries_per_system",
    "energy_j",
    *(
        f"{q}{phase}"
        for q in ("physical_queries", "digital_flops", "device_time_s", "offloaded_flops")
        for phase in ("", "_setup", "_training", "_evaluation")
    ),
)


# ---------------------------------------------------------------------- without Ray
@pytest.mark.parametrize("rule", ["pat", "backprop-ideal", "backprop-transfer"])
def test_rules_with_a_backward_pass_cannot_pipeline(rule):
    assert "backward pass through every block" in pipeline_refusal(RULES[rule])


def test_local_rules_pipeline_and_a_local_loss_held_by_the_rule_is_refused():
    assert [pipeline_refusal(RULES[r]) for r in ("phyll", "ff", "phyll-unsup")] == [None] * 3
    assert "does not train block by block" in pipeline_refusal(RULES["linear"])

    class OwnFF(ForwardForward):
        block_objective = LocalContrastiveRule.block_objective  # bound to the rule: stays here

    assert "block_objective()" in pipeline_refusal(OwnFF)


def test_rules_that_need_the_network_output_first_do_not_pipeline():
    for rule in ("dfa", "zo", "linear"):
        assert "does not train block by block" in pipeline_refusal(RULES[rule])


@pytest.mark.parametrize("rule", ["phyll", "ff"])
def test_a_block_objective_sent_to_a_worker_is_the_rules_loss_with_several_negatives(rule):
    config = TrainConfig(rule=rule, blocks=2, width=8, measurements=8, rule_params={"negatives": 3})
    exp = build_experiment(config)
    out = torch.randn(4 * 5, 8, generator=torch.Generator().manual_seed(0))  # B = 5, K = 3
    for index in range(2):
        objective = exp.rule.block_objective(index)
        assert torch.equal(objective(out, {}), exp.rule.local_loss(out[:5], out[5:], index))


def test_train_refuses_what_cannot_pipeline_in_one_line_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    cases = [
        (["--rule", "pat", "--pipeline", "ray"], "backward pass through every block"),
        (["--pipeline-sync"], "needs a pipeline (--pipeline ray)"),
        (["--pipeline", "ray", "--record"], "--record is not available"),
    ]
    for options, message in cases:
        assert main(["train", "--epochs", "1", "--quiet", "--out", str(out), *options]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_without_the_extra_the_pipeline_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    out = tmp_path / "run"
    assert main(["train", "--pipeline", "ray", "--epochs", "1", "--out", str(out)]) == 2
    assert 'pip install -e ".[ray]"' in capsys.readouterr().err
    assert not out.exists()


def test_compare_and_sweep_take_the_pipeline_and_train_pat_sequentially():
    args = build_parser().parse_args(["compare", "--pipeline", "ray", "--address", "auto"])
    base = TrainConfig(**{"pipeline": "ray", "ray_address": "auto"})
    assert (args.pipeline, args.ray_address) == ("ray", "auto")
    assert entry_config("phyll", base, 0).pipeline == "ray"
    assert entry_config("phyll-nophysics", base, 1).pipeline == "ray"
    assert entry_config("pat", base, 0).pipeline == "none"
    for entry in ("linear", "dfa", "dfa-frozen"):  # the controls that cannot pipeline either
        assert entry_config(entry, base, 0).pipeline == "none"
    assert entry_config("mlp-matched", base, 0, matched_width=8).pipeline == "none"
    sweep = sweep_of(
        build_parser().parse_args(["sweep", "--param", "lr=0.01", "--pipeline", "ray"])
    )
    assert sweep.base.pipeline == "ray"
    assert sequential_if_needed(dataclasses.replace(base, rule="pat")).pipeline == "none"
    assert sequential_if_needed(base) == base


def test_an_unreachable_ray_cluster_is_one_line(monkeypatch):
    class NoCluster:
        def is_initialized(self):
            return False

        def init(self, **kwargs):
            raise ConnectionError("Could not find any running Ray instance.\nStart one first.")

    monkeypatch.setattr(actors, "ray_module", lambda: NoCluster())
    with pytest.raises(PipelineError, match="cannot connect to the Ray cluster at auto: Could not"):
        actors.connect("auto")


def test_one_address_per_block_gives_each_block_its_own_instrument():
    params = {"address": "tcp://h1:5555, tcp://h2:5555", "timeout_s": 2.0}
    assert block_params(params, 1, 2) == {"address": "tcp://h2:5555", "timeout_s": 2.0}
    assert block_params({"address": "tcp://h1:5555"}, 1, 2) == {"address": "tcp://h1:5555"}
    with pytest.raises(ConfigError, match="lists 2 values for 3 blocks"):
        block_params(params, 0, 3)


def test_a_worker_trains_its_block_in_order_only():
    exp = build_experiment(TrainConfig(**SMALL))
    spec = worker_specs(exp)[0]
    worker = BlockWorker()
    worker.setup(spec)
    block = exp.model.blocks[0]
    worker.load(WorkerState(block.state_dict(), exp.rule.optimizers[0].state_dict()))
    step = exp.rule.prepare_step(exp.splits.x_train[:8], exp.splits.y_train[:8])
    inputs = to_wire(step.inputs)
    outs, neutral, reports = worker.train(
        1, [inputs, inputs], [{}, {}], None, [True, False], [None, None]
    )
    assert [o.shape for o in outs] == [(16, 16)] * 2 and neutral is None
    assert all(isinstance(r.loss, float) and r.costs.physical_queries == 16 for r in reports)
    assert reports[0].snapshot.system["queries"] == 16 and reports[1].snapshot is None
    assert worker.block.system.queries == 32
    with pytest.raises(RuntimeError, match="task 3 arrived after task 1: out of order"):
        worker.forward(3, inputs)


def test_a_worker_reuses_the_count_of_a_repeated_step_exactly():
    exp = build_experiment(TrainConfig(**SMALL))
    workers = [BlockWorker(), BlockWorker()]
    for worker in workers:
        worker.setup(worker_specs(exp)[0])
    inputs = to_wire(torch.rand(16, exp.model.blocks[0].in_features))
    signature = exp.rule.step_signature(torch.rand(8, 2), torch.zeros(8))
    steps = ([inputs] * 6, [{}] * 6, None, [False] * 6)
    reused = workers[0].train(1, *steps, [signature] * 6)[2]
    counted = workers[1].train(1, *steps, [None] * 6)[2]  # the rule asks for a full count
    assert [r.costs.digital_flops_by_kind for r in reused] == [
        r.costs.digital_flops_by_kind for r in counted
    ]
    assert reused[0].costs.digital_flops > 0
    assert workers[0].meters["train"]._repeated and not workers[1].meters["train"]._repeated


# ---------------------------------------------------------------------- on Ray
@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for this module (starting one costs seconds on 2 cores)."""
    ray = pytest.importorskip("ray", reason="the optional extra .[ray] is not installed")
    ray.init(num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)  # fmt: skip
    yield ray
    ray.shutdown()


def run(config: TrainConfig, out: Path, **kwargs) -> tuple[dict, dict]:
    """Train into ``out``: the summary and the selected weights."""
    summary = train(config, out, progress=False, **kwargs)
    return summary, torch.load(out / "model.pt", weights_only=True)["model"]


@pytest.fixture(scope="module")
def sequential(tmp_path_factory, ray_instance):
    """The sequential reference run (and the pipelined async one, which must equal it)."""
    folder = tmp_path_factory.mktemp("pipeline")
    config = TrainConfig(**SMALL)
    return config, folder, run(config, folder / "sequential")


def assert_same_run(got: tuple[dict, dict], want: tuple[dict, dict]) -> None:
    (summary, weights), (reference, reference_weights) = got, want
    assert {k: summary[k] for k in SAME} == {k: reference[k] for k in SAME}
    assert weights.keys() == reference_weights.keys()
    assert all(torch.equal(weights[k], reference_weights[k]) for k in weights)


@pytest.mark.parametrize("sync", [False, True], ids=["async", "sync"])
def test_a_pipelined_run_is_the_sequential_run_bit_for_bit(sequential, sync):
    config, folder, reference = sequential
    pipelined = dataclasses.replace(config, pipeline="ray", pipeline_sync=sync)
    out = folder / f"pipelined-{sync}"
    summary, weights = run(pipelined, out)
    assert_same_run((summary, weights), reference)
    assert summary["test_accuracy"] > 0.5
    assert json.loads((out / "config.json").read_text())["pipeline"] == "ray"
    assert json.loads((out / "summary.json").read_text())["pipeline"] == "ray"
    # the costs add up every actor's work: busy seconds are the phases' wall time
    timeline = summary["pipeline_timeline"]
    busy = sum(b["busy_s"] for b in timeline["blocks"]) + timeline["driver_busy_s"]
    worked = summary["wall_time_s_training"] + summary["wall_time_s_evaluation"]
    assert busy == pytest.approx(worked, rel=1e-6)
    assert timeline["mode"] == ("sync" if sync else "async")
    assert all(b["tasks"] > 0 and b["idle_s"] >= 0 for b in timeline["blocks"])
    # the two actors share this machine's cores in torch threads (sync: one task at a time
    # runs the driver's count)
    driver = torch.get_num_threads()
    threads = driver if sync else max(1, min(driver, available_cores()) // 2)
    assert [b["threads"] for b in timeline["blocks"]] == [threads, threads]


def test_an_actor_freezes_its_process_imports_out_of_the_garbage_collector():
    gc.unfreeze()
    try:
        actors.BlockActor()  # what each Ray actor runs when its process starts
        assert gc.get_freeze_count() > 10_000  # torch's and phyll's objects
    finally:
        gc.unfreeze()  # this test process is not an actor's


def test_actors_share_their_machines_cores_and_the_runs_threads():
    # four actors on a 2-core lab PC, one alone on a 16-core server; at least one thread each
    hosts = ["lab-pc"] * 4 + ["server"]
    assert actors.thread_shares(hosts, [2, 2, 2, 2, 16], most=16) == [1, 1, 1, 1, 16]
    assert actors.thread_shares(["a", "a"], [16, 16], most=16) == [8, 8]
    # a run given 4 threads (a sweep trial beside three others) keeps to them
    assert actors.thread_shares(["a"] * 4, [16] * 4, most=4) == [1, 1, 1, 1]
    assert actors.thread_shares(["a"] * 3, [2, 2, 2], most=2) == [1, 1, 1]


@pytest.mark.parametrize(
    "rule",
    [("phyll", {"prediction": "readout"}), ("phyll", {"negatives": 3}), ("phyll-unsup", {})],
    ids=["readout", "negatives", "unsup"],
)
def test_readout_and_unsupervised_rules_pipeline_exactly(sequential, rule):
    config, folder, _ = sequential
    name, params = rule
    config = dataclasses.replace(config, rule=name, rule_params=params, epochs=2)
    tag = f"{name}-{'-'.join(params)}"
    reference = run(config, folder / f"{tag}-sequential")
    pipelined = run(dataclasses.replace(config, pipeline="ray"), folder / tag)
    assert_same_run(pipelined, reference)


def test_a_schedule_and_epochs_without_evaluation_pipeline_exactly(sequential):
    """A cosine rate changes every epoch (sent to the actors again), and an epoch without an
    evaluation takes its snapshot from a state request instead of the last pass."""
    config, folder, _ = sequential
    config = dataclasses.replace(config, lr_schedule="cosine", eval_every=2, epochs=3)
    reference = run(config, folder / "cosine-sequential")
    pipelined = run(dataclasses.replace(config, pipeline="ray"), folder / "cosine")
    assert_same_run(pipelined, reference)


def test_a_worker_state_travels_as_arrays_and_comes_back_the_same():
    import pickle

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    kept = torch.ones(2, dtype=torch.bfloat16)  # NumPy has no bfloat16: pickled by torch
    state = WorkerState(
        model.state_dict(), optimizer.state_dict(), {"rng": torch.get_rng_state(), "t": [kept]}
    )
    back = pickle.loads(pickle.dumps(state, protocol=5))
    assert all(torch.equal(back.block[k], v) for k, v in state.block.items())
    step = back.optimizer["state"][0]["step"]
    assert isinstance(step, torch.Tensor) and step.dtype == torch.float32 and float(step) == 1
    assert torch.equal(back.system["rng"], state.system["rng"])
    assert back.system["t"][0].dtype == torch.bfloat16
    back.block["weight"].add_(1)  # writable, and not the sender's
    assert not torch.equal(back.block["weight"], state.block["weight"])


def test_a_restart_point_is_a_copy_that_later_training_does_not_touch():
    from phyll.experiments.pipeline.trainer import _copied

    weight = torch.ones(2, 3)
    state = {"model": {"w": weight}, "best": [1, 0.5, None, "x", (2, weight)], "obj": {"k": [3]}}
    point = _copied(state)
    weight.add_(1)  # the live weights train on
    state["obj"]["k"].append(4)
    assert torch.equal(point["model"]["w"], torch.ones(2, 3))
    assert torch.equal(point["best"][4][1], torch.ones(2, 3)) and point["best"][:4] == [
        1,
        0.5,
        None,
        "x",
    ]
    assert point["obj"] == {"k": [3]} and isinstance(point["best"][4], tuple)


class At(Callback):
    """At the end of training step ``step``: request a stop; or kill block ``kill``'s actor
    (once) with ``ray``; or, without ``ray``, report that actor dead (as the pipeline does
    when it finds one dead: the same path, without the seconds a replacement takes)."""

    def __init__(self, step: int, kill: int | None = None, ray=None) -> None:
        self.step, self.kill, self.ray = step, kill, ray

    def on_step_end(self, engine):
        if engine.global_step != self.step:
            return
        self.step = -1
        if self.kill is None:
            engine.request_stop("test")
        elif self.ray is None:
            raise ActorDied(self.kill, "reported by the test")
        else:
            self.ray.kill(engine.pipeline.actors[self.kill])


def test_resume_mid_epoch_continues_exactly(sequential):
    config, folder, reference = sequential
    out = folder / "stopped"
    pipelined = dataclasses.replace(config, pipeline="ray")
    with pytest.raises(TrainingInterrupted, match="checkpoint kept"):
        train(pipelined, out, progress=False, callbacks=[At(7)])
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # the steps in flight done
    assert state["global_step"] >= 7 and 0 < state["epoch_progress"]["step"] < 13  # mid-epoch
    summary = resume(out, progress=False)
    weights = torch.load(out / "model.pt", weights_only=True)["model"]
    assert_same_run((summary, weights), reference)


def test_a_pipelined_run_trained_longer_equals_the_longer_run(sequential):
    config, folder, (reference, reference_weights) = sequential
    out = folder / "extended"
    run(dataclasses.replace(config, pipeline="ray", epochs=config.epochs - 1), out)
    summary = resume(out, progress=False, epochs=config.epochs)
    weights = torch.load(out / "model.pt", weights_only=True)["model"]
    assert all(torch.equal(weights[k], reference_weights[k]) for k in reference_weights)
    same = ("test_accuracy", "val_accuracy", "best_epoch", "physical_queries_training")
    assert {k: summary[k] for k in same} == {k: reference[k] for k in same}
    assert [e["to_epochs"] for e in summary["extensions"]] == [config.epochs]


def test_a_dead_actor_is_replaced_and_the_run_continues_exactly(sequential, ray_instance, capsys):
    config, folder, reference = sequential
    pipelined = dataclasses.replace(config, pipeline="ray")
    got = run(pipelined, folder / "killed", callbacks=[At(8, kill=1, ray=ray_instance)])
    assert_same_run(got, reference)
    assert got[0]["pipeline_timeline"]["restarts"] == 1
    assert "the actor of block 1 died" in capsys.readouterr().err


def test_without_restarts_a_dead_actor_stops_the_run_and_nothing_is_lost(sequential):
    config, folder, reference = sequential
    out = folder / "stopped-dead"
    pipelined = dataclasses.replace(config, pipeline="ray", pipeline_restarts=0)
    with pytest.raises(TrainingError) as stopped:
        train(pipelined, out, progress=False, callbacks=[At(8, kill=0)])
    message = str(stopped.value)
    assert len(message.splitlines()) == 1 and "the actor of block 0 died" in message
    assert f"phyll train --resume {out}" in message
    summary = resume(out, progress=False)
    weights = torch.load(out / "model.pt", weights_only=True)["model"]
    assert_same_run((summary, weights), reference)


def test_a_faulty_system_stops_the_pipeline_as_it_stops_a_sequential_run(sequential, tmp_path):
    config, _, _ = sequential
    faulty = dataclasses.replace(config, faults=[{"name": "nan-bursts", "rate": 1.0}])
    messages = []
    for pipeline in ("none", "ray"):
        with pytest.raises(TrainingError) as stopped:
            train(
                dataclasses.replace(faulty, pipeline=pipeline), tmp_path / pipeline, progress=False
            )
        messages.append(str(stopped.value).split("; last good checkpoint")[0])
    assert messages[0] == messages[1]
    assert "physical system of block 0 returned invalid measurements" in messages[0]


def test_compare_pipelines_local_rules_and_the_report_shows_each_actor(sequential, capsys):
    _, folder, _ = sequential
    out = folder / "compare"
    options = ["--dataset", "vowels", "--blocks", "2", "--width", "12", "--measurements", "16"]
    argv = ["compare", *options, "--epochs", "1", "--seeds", "1", "--rules", "phyll,pat"]
    argv += ["--pipeline", "ray"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    runs = {p.name: json.loads((p / "summary.json").read_text()) for p in (out / "runs").iterdir()}
    assert {name: s["pipeline"] for name, s in runs.items()} == {
        "phyll-seed0": "ray",
        "pat-seed0": "none",
    }
    capsys.readouterr()
    assert main(["report", str(out / "runs" / "phyll-seed0")]) == 0
    page = (out / "runs" / "phyll-seed0" / "report.html").read_text()
    assert "Pipeline: each block" in page and "starting the actors" in page
    assert page.count("<img") == 2  # the learning curve and the actors' timeline


def test_each_actor_drives_its_own_served_instrument(sequential, tmp_path):
    servers = ThreadServers()  # in this process; the actors reach them over TCP
    try:
        served = [servers(AcousticCavity(24, 24, seed=i)) for i in range(2)]
        addresses = [server.address for server in served]
        config = TrainConfig(
            dataset="vowels", epochs=1, blocks=2, width=24, measurements=24, system="remote",
            system_params={"address": ",".join(addresses)}, pipeline="ray",
        )  # fmt: skip
        summary = train(config, tmp_path / "run", progress=False)
        assert [server.samples for server in served] == summary["queries_per_system"]
        assert min(summary["queries_per_system"]) > 0
        assert [s["address"] for s in summary["systems"]] == addresses
    finally:
        servers.stop_all()
