"""``phyll sweep``: the space (no Ray needed), the missing extra, and sweeps on one shared local
Ray instance: the documented command, resume, random search with a failing trial and
tracking, Optuna."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass

import pytest

from phyll.cli import build_parser, main
from phyll.experiments import depth
from phyll.experiments.config import TrainConfig
from phyll.experiments.depth import DepthConfig
from phyll.experiments.ray_executor import (
    RayError,
    RayExecutor,
    Resources,
    check_resources,
    start_ray,
)
from phyll.experiments.runner import run_experiment
from phyll.experiments.sweep import sweep_of
from phyll.experiments.sweep_space import (
    SpaceError,
    apply,
    grid_points,
    parse_space,
    values_of,
)
from phyll.params import ParamError, param
from phyll.systems.base import PhysicalSystem

BASE = TrainConfig()
SMALL = ["--dataset", "vowels", "--width", "12", "--measurements", "12", "--quiet"]


@dataclass(frozen=True)
class ThetaParams:
    theta: float = param(1.0, "a parameter named like PhyLL's theta")


class ThetaSystem(PhysicalSystem):
    """A system whose parameter shares a name with a rule parameter (for the ambiguity check)."""

    Params = ThetaParams


# ---------------------------------------------------------------------- the space, no Ray
def test_grid_axes_resolve_to_options_and_rule_parameters():
    axes = parse_space(["lr=0.003,0.01", "seed=0,1", "width=16, 32"], BASE)
    assert [(a.name, a.target, a.field) for a in axes] == [
        ("lr", "rule", "lr"),
        ("seed", "config", "seed"),
        ("width", "config", "width"),
    ]
    assert [a.spec() for a in axes] == [
        {"grid": [0.003, 0.01]},
        {"grid": [0, 1]},
        {"grid": [16, 32]},
    ]
    points = grid_points(axes)
    assert len(points) == 8 and points[1] == {"lr": 0.003, "seed": 0, "width": 32}
    config = apply(BASE, axes, points[-1])
    assert (config.rule_params, config.seed, config.width) == ({"lr": 0.01}, 1, 32)
    assert values_of(config.to_dict(), axes) == points[-1]


def test_distributions_and_prefixed_names():
    axes = parse_space(
        [
            "width=loguniform:16:256",
            "rule.theta=uniform:2:6",
            "system.t60_s=0.3,0.6",
            "blocks=randint:1:4",
        ],
        BASE,
    )
    assert [a.spec() for a in axes] == [
        {"loguniform": [16.0, 256.0]},
        {"uniform": [2.0, 6.0]},
        {"grid": [0.3, 0.6]},
        {"randint": [1, 4]},
    ]
    config = apply(BASE, axes, {"width": 33.6, "rule.theta": 3.5, "system.t60_s": 0.6, "blocks": 2})
    assert config.width == 34  # an integer option rounds a real draw
    assert config.rule_params == {"theta": 3.5} and config.system_params == {"t60_s": 0.6}
    assert grid_points(axes) == [{"system.t60_s": 0.3}, {"system.t60_s": 0.6}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope=1,2", "unknown name; valid: dataset, .*rule.lr, .*system.t60_s"),
        ("faults=1", "unknown name"),
        ("rule.t60_s=1", "unknown name"),
        ("width=loguniform:0:8", "LOW > 0"),
        ("width=uniform:8:4", "LOW < HIGH"),
        ("dataset=uniform:1:2", "needs a numeric option"),
        ("blocks=randint:1.5:3", "integer bounds"),
        ("width=8,8", "repeated"),
        ("width", "expected NAME="),
        ("lr=", "expected NAME="),
    ],
)
def test_bad_axes_are_one_line_errors(text, message):
    with pytest.raises(SpaceError, match=message):
        parse_space([text], BASE)


def test_values_of_the_wrong_type_and_names_given_twice():
    with pytest.raises(ParamError, match="lr must be a number"):
        parse_space(["lr=fast"], BASE)
    with pytest.raises(SpaceError, match="swept twice"):
        parse_space(["lr=0.1", "rule.lr=0.2"], BASE)


def test_a_name_both_the_rule_and_the_system_declare_is_ambiguous():
    base = TrainConfig(system=f"{__name__}:ThetaSystem")
    with pytest.raises(SpaceError, match=r"ambiguous: both rule\.theta and system\.theta"):
        parse_space(["theta=1,2"], base)
    assert [a.target for a in parse_space(["system.theta=1,2"], base)] == ["system"]


def test_a_rule_parameter_must_belong_to_every_rule_swept():
    axes = parse_space(["rule=phyll,ff", "lr=0.01,0.1"], BASE)
    assert [a.name for a in axes] == ["rule", "lr"]
    with pytest.raises(SpaceError, match="unknown name"):
        parse_space(["rule=phyll,backprop-ideal", "theta=2,4"], BASE)


def test_command_line_seeds_and_rules_become_axes():
    args = build_parser().parse_args(
        ["sweep", "--param", "lr=0.003,0.01", "--seeds", "2", "--first-seed", "5",
         "--rules", "phyll,ff", "--epochs", "3"]
    )  # fmt: skip
    sweep = sweep_of(args)
    assert sweep.params == ["lr=0.003,0.01", "seed=5,6", "rule=phyll,ff"]
    assert (sweep.searcher, sweep.samples, sweep.base.seed, sweep.base.rule) == (
        "grid",
        1,
        5,
        "phyll",
    )
    assert sweep.base.epochs == 3
    args = build_parser().parse_args(["sweep", "--param", "seed=1,2", "--seeds", "2"])
    with pytest.raises(SpaceError, match="either as --seeds or as --param seed"):
        sweep_of(args)
    random = sweep_of(build_parser().parse_args(["sweep", "--param", "lr=loguniform:1e-3:1e-1"]))
    assert random.searcher == "random"


def test_without_the_extra_sweep_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    monkeypatch.setitem(sys.modules, "ray.tune", None)
    out = tmp_path / "sweep"
    code = main(["sweep", "--param", "lr=0.01,0.1", "--epochs", "1", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert 'pip install -e ".[ray]"' in err
    assert not out.exists()


def test_bad_sweeps_stop_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", "--param", "nope=1,2", "--out", str(out)]) == 2
    assert "unknown name" in capsys.readouterr().err
    assert (
        main(["sweep", "--searcher", "grid", "--param", "lr=uniform:0:1", "--out", str(out)]) == 2
    )
    assert "grids only" in capsys.readouterr().err
    assert main(["sweep", "--resume", str(out)]) == 2
    assert "holds no sweep" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "notes.txt").write_text("mine")
    assert main(["sweep", "--param", "lr=0.01", "--out", str(tmp_path / "thesis")]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
    assert main(["sweep", "--param", "lr=0.01", "--out", "/proc/phyll-sweep/x"]) == 2
    assert "/proc" in capsys.readouterr().err


def test_an_unreachable_cluster_is_one_line():
    class NoCluster:
        def init(self, **kwargs):
            raise ConnectionError("Could not find any running Ray instance.\nStart one first.")

    with pytest.raises(RayError, match="cannot connect to the Ray cluster at auto: Could not"):
        start_ray(NoCluster(), "auto")


def test_a_trial_larger_than_the_cluster_is_refused():
    with pytest.raises(RayError, match="asks for 1 GPUs but the Ray cluster has 0"):
        check_resources({"CPU": 2.0}, Resources(gpus_per_trial=1))
    with pytest.raises(RayError, match="--cpus-per-trial"):
        check_resources({"CPU": 2.0}, Resources(cpus_per_trial=4))
    check_resources({"CPU": 2.0, "GPU": 1.0}, Resources(cpus_per_trial=2, gpus_per_trial=0.5))


# ---------------------------------------------------------------------- sweeps on Ray
@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance for every sweep below (starting one costs seconds)."""
    ray = pytest.importorskip("ray", reason="the optional extra .[ray] is not installed")
    pytest.importorskip("ray.tune", reason="the optional extra .[ray] is not installed")
    ray.init(num_cpus=2, object_store_memory=100 * 2**20, include_dashboard=False,
             log_to_driver=False, logging_level="error")  # fmt: skip
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def done_sweep(ray_session, tmp_path_factory):
    """docs/experiments.md's command: 2 learning rates × seeds 0 and 1 = 4 trials."""
    out = tmp_path_factory.mktemp("sweeps") / "lr"
    argv = ["sweep", "--dataset", "vowels", "--epochs", "3", "--param", "lr=0.003,0.01"]
    assert main([*argv, "--seeds", "2", "--out", str(out)]) == 0
    return out


def read(path):
    return json.loads(path.read_text())


def test_the_documented_sweep_writes_four_trials(done_sweep):
    record = read(done_sweep / "sweep.json")
    assert (record["format"], record["engine"], record["searcher"]) == (
        "phyll-sweep/1",
        "ray",
        "grid",
    )
    assert record["space"] == {"lr": {"grid": [0.003, 0.01]}, "seed": {"grid": [0, 1]}}
    assert record["base_config"]["epochs"] == 3 and record["wall_time_s"] > 0
    trials = record["trials"]
    assert [t["params"] for t in trials] == [
        {"lr": 0.003, "seed": 0},
        {"lr": 0.003, "seed": 1},
        {"lr": 0.01, "seed": 0},
        {"lr": 0.01, "seed": 1},
    ]
    for t in trials:
        assert t["status"] == "done" and t["error"] is None
        assert 0.5 < t["test_accuracy"] <= 1 and t["epochs"] == 3
        assert set(t["costs"]) == {"physical_queries", "digital_flops", "wall_time_s",
                                   "projected_time_s", "energy_j"}  # fmt: skip
        run = done_sweep / t["run_dir"]
        summary = read(run / "summary.json")
        assert summary["test_accuracy"] == t["test_accuracy"]
        config = read(run / "config.json")
        assert (config["rule_params"]["lr"], config["seed"]) == (
            t["params"]["lr"],
            t["params"]["seed"],
        )
        assert {"checkpoint.pt", "metrics.jsonl", "model.pt", "learning_curve.png"} <= {
            p.name for p in run.iterdir()
        }
    assert (done_sweep / "sweep.png").stat().st_size > 0
    table = (done_sweep / "sweep_table.md").read_text().splitlines()
    assert len([line for line in table if line.startswith("| trial-") or "(best)" in line]) == 4


def test_resume_keeps_finished_trials_and_completes_the_rest(done_sweep, tmp_path):
    out = tmp_path / "lr"
    shutil.copytree(done_sweep, out)
    kept = {p: p.stat().st_mtime_ns for p in (out / "trials" / "trial-0000").iterdir()}
    (out / "trials" / "trial-0001" / "summary.json").unlink()  # stopped after its checkpoint
    shutil.rmtree(out / "trials" / "trial-0003")  # never started
    assert main(["sweep", "--epochs", "3", "--out", str(out)]) == 2  # a sweep is there already
    assert main(["sweep", "--resume", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "trials" / "trial-0000").iterdir()} == kept
    record = read(out / "sweep.json")
    assert [t["status"] for t in record["trials"]] == ["done"] * 4
    resumed = out / "trials" / "trial-0001"
    assert [m["epoch"] for m in map(json.loads, (resumed / "metrics.jsonl").open())] == [1, 2, 3]
    assert read(resumed / "summary.json")["test_accuracy"] == record["trials"][1]["test_accuracy"]
    before = read(done_sweep / "sweep.json")["trials"]
    assert record["trials"][3]["test_accuracy"] == before[3]["test_accuracy"]  # same seed, same run
    assert record["wall_time_s"] > read(done_sweep / "sweep.json")["wall_time_s"]


def test_random_search_records_a_failing_trial_and_tracks_the_rest(
    ray_session, tmp_path, monkeypatch
):
    mlflow = pytest.importorskip("mlflow", reason="the optional extra .[mlflow] is not installed")
    out, store = tmp_path / "random", (tmp_path / "mlruns").as_uri()
    argv = ["sweep", *SMALL, "--epochs", "1", "--param", "system.noise_std=0.001,-1",
            "--param", "width=randint:8:17", "--track", "mlflow", "--track-uri", store,
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = read(out / "sweep.json")
    assert record["searcher"] == "random"
    assert record["space"]["width"] == {"randint": [8, 17]}
    good, bad = record["trials"]
    assert good["status"] == "done" and 8 <= good["params"]["width"] < 17
    assert bad["status"] == "error" and "noise" in bad["error"] and bad["test_accuracy"] is None
    assert "error: " in (out / "sweep_table.md").read_text()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the trials' tracker does
    client = mlflow.tracking.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("phyll").experiment_id])
    assert [r.info.run_name for r in runs] == ["trial-0000"]  # the failing one never trained
    assert runs[0].data.metrics["summary.test_accuracy"] == good["test_accuracy"]


def test_optuna_proposes_the_trials(ray_session, tmp_path):
    pytest.importorskip("optuna", reason="the optional extra .[ray] is not installed")
    out = tmp_path / "optuna"
    argv = ["sweep", *SMALL, "--epochs", "1", "--searcher", "optuna", "--samples", "2",
            "--param", "lr=loguniform:1e-3:1e-1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    record = read(out / "sweep.json")
    assert record["searcher"] == "optuna"
    assert [t["id"] for t in record["trials"]] == ["trial-0000", "trial-0001"]
    for t in record["trials"]:
        assert t["status"] == "done" and 1e-3 <= t["params"]["lr"] <= 1e-1
        assert read(out / t["run_dir"] / "config.json")["rule_params"]["lr"] == t["params"]["lr"]


def test_ray_and_local_processes_are_interchangeable_executors(ray_session, tmp_path):
    """Any kind runs on Ray: the same depth experiment, trained by Ray Tune trials, gives the
    same results as one run after the other in this process."""
    config = DepthConfig(TrainConfig(epochs=2, width=8, measurements=16), [1, 2], [0])
    local = run_experiment(depth.KIND, config, tmp_path / "local", progress=False)
    on_ray = run_experiment(depth.KIND, config, tmp_path / "ray", executor=RayExecutor())
    assert [r["test_accuracy"] for r in on_ray["runs"]] == [
        r["test_accuracy"] for r in local["runs"]
    ]
    assert (tmp_path / "ray" / "blocks-02-seed0" / "summary.json").is_file()
