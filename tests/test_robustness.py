"""`phyll robustness`: rules trained under a step perturbation and under drift; JSON and PNG."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from phyll.cli import main
from phyll.experiments.config import TrainConfig
from phyll.experiments.robustness import RobustnessConfig, run_robustness
from phyll.experiments.run_folder import RunFolder, RunFolderError


def small(**kw) -> RobustnessConfig:
    train = TrainConfig(epochs=4, blocks=1, width=16, measurements=32, train_eval_samples=16)
    return RobustnessConfig(train=train, **kw)


def test_robustness_runs_each_scenario_and_applies_the_changes(tmp_path):
    report = run_robustness(small(rules=("phyll",)), tmp_path, progress=False)
    runs = report["results"]["phyll"]
    assert set(runs) == {"none", "step", "drift"}
    assert report["config"]["strength"] == 10.0  # the acoustic cavity's typical step (°C)
    step = runs["step"]
    assert step["applied_at_query"][0] is not None
    assert [r["displacement"] for r in step["curve"]] == [[0.0], [0.0], [10.0], [10.0]]
    assert step["right_after_step"]["test_accuracy"] is not None
    assert runs["drift"]["curve"][-1]["displacement"][0] != 0.0
    for run in runs.values():
        assert [r["epoch"] for r in run["curve"]] == [1, 2, 3, 4]
        assert run["final_test_accuracy"] > 3 / 7  # learns in every scenario (chance 1/7)
    # same seed, same data and weights: identical until the step
    assert runs["none"]["curve"][1]["test_accuracy"] == step["curve"][1]["test_accuracy"]
    saved = json.loads((tmp_path / "robustness.json").read_text())
    assert saved["results"]["phyll"]["step"]["curve"] == step["curve"]
    assert (tmp_path / "robustness.png").stat().st_size > 0


def test_an_unknown_rule_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["robustness", "--rules", "phyll", "no-such-rule", "--scenarios", "none", "step",
         "--epochs", "2", "--blocks", "1", "--width", "8", "--measurements", "16",
         "--out", str(out), "--quiet"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown rule 'no-such-rule' in --rules" in err
    assert not out.exists()


def test_bad_requests_are_user_errors(tmp_path, capsys):
    assert main(["robustness", "--rules", "nope", "--out", str(tmp_path), "--quiet"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="perturb_epoch"):
        small(perturb_epoch=4)


def curves(folder) -> dict:
    """Every curve of a robustness.json, timings left out (they differ between runs)."""
    report = json.loads((folder / "robustness.json").read_text())
    return {
        (rule, scenario): (run["curve"], run["right_after_step"], run["applied_at_query"])
        for rule, runs in report["results"].items()
        for scenario, run in runs.items()
    }


def checkpointed_step(checkpoint) -> int:
    """The step a running experiment's checkpoint holds; 0 while the writer is between
    replacing the file and recording its hash in the manifest (read mid-write)."""
    try:
        return RunFolder(checkpoint.parent).load(checkpoint)["global_step"]
    except RunFolderError:
        return 0


def test_sigint_mid_run_then_resume_writes_the_same_curves(tmp_path):
    args = ["robustness", "--dataset", "digits", "--rules", "phyll", "--scenarios", "none,step",
            "--epochs", "3", "--blocks", "1", "--width", "16", "--measurements", "32",
            "--checkpoint-every", "5", "--quiet"]  # fmt: skip
    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference)]) == 0

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", *args, "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint = out / "runs" / "phyll-step" / "checkpoint.pt"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if checkpoint.exists() and checkpointed_step(checkpoint):
                break  # the step scenario is training: interrupt it mid-run
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "SIGINT" in err and "Traceback" not in err
    assert f"continue with `phyll robustness --resume {out}`" in err  # the experiment's command
    assert not (out / "robustness.json").exists()
    assert main(["robustness", "--resume", str(out), "--quiet"]) == 0
    assert curves(out) == curves(reference)
