"""`phyll compare`: one table, plots and summary.json over rules × seeds, from real runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from phyll.cli import main
from phyll.experiments.compare import (
    QUANTITIES,
    aggregate,
    cost_to_target,
    entry_config,
    gain_lines,
    line_style,
    markdown_table,
    physics_gain,
)
from phyll.experiments.config import TrainConfig


def test_compare_writes_summary_table_plots_and_run_folders(tmp_path, capsys):
    out = tmp_path / "cmp"
    rules = "phyll,backprop-ideal,phyll-nophysics"
    argv = ["compare", "--rules", rules, "--seeds", "2", "--epochs", "2", "--width", "16",
            "--measurements", "32", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[6/6] phyll-nophysics · seed 1" in printed  # progress per rule and seed
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["rules"]) == ["phyll", "backprop-ideal", "phyll-nophysics"]
    for name, rule in summary["rules"].items():
        keys = ("test_accuracy_mean", "test_accuracy_std", "physical_queries", "digital_flops",
                "wall_time_s", "digital_flops_per_epoch", "energy_j")  # fmt: skip
        for key in keys:
            assert rule[key] is not None, (name, key)
        runs = [json.loads((out / "runs" / f"{name}-seed{s}" / "summary.json").read_text())
                for s in (0, 1)]  # fmt: skip
        accs = [r["test_accuracy"] for r in runs]
        assert rule["test_accuracy_mean"] == pytest.approx(sum(accs) / 2)
        assert rule["physical_queries"] == pytest.approx(
            sum(r["physical_queries"] for r in runs) / 2
        )
    rules = summary["rules"]
    assert rules["phyll"]["test_accuracy_mean"] > 0.5
    assert rules["phyll-nophysics"]["physical_queries"] == 0  # the ablation drives no physics
    assert rules["backprop-ideal"]["physical_queries"] == 0  # in silico, tested in silico
    # the digital work the physics replaced, next to the learner's own FLOPs
    assert rules["phyll"]["offloaded_flops"] > 0
    assert rules["phyll-nophysics"]["offloaded_flops"] == 0
    assert rules["backprop-ideal"]["offloaded_flops"] == 0
    runs = [json.loads((out / "runs" / f"phyll-seed{s}" / "summary.json").read_text())
            for s in (0, 1)]  # fmt: skip
    ratios = [r["offloaded_flops"] / r["digital_flops"] for r in runs]
    assert rules["phyll"]["offloaded_per_learner_flop"] == pytest.approx(sum(ratios) / 2)
    table = (out / "table.md").read_text()
    assert table in printed and "| phyll-nophysics |" in table
    assert "| offloaded FLOPs | offloaded / learner FLOPs |" in table.splitlines()[0]
    phyll_row = next(line for line in table.splitlines() if line.startswith("| phyll |"))
    assert f"| {rules['phyll']['offloaded_flops']:.3g} |" in phyll_row
    assert (out / "accuracy_vs_epoch.png").stat().st_size > 0
    assert (out / "accuracy_vs_flops.png").stat().st_size > 0
    assert main(argv) == 2  # an existing comparison is not overwritten silently


def test_unknown_rule_is_a_clear_user_error(tmp_path, capsys):
    assert main(["compare", "--rules", "phyll,sgd", "--out", str(tmp_path / "c")]) == 2
    assert "unknown rule 'sgd'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_entries_share_everything_but_the_rule():
    base = TrainConfig(dataset="vowels", width=16)
    ablation = entry_config("phyll-nophysics", base, seed=3)
    assert (ablation.rule, ablation.use_physics, ablation.seed, ablation.width) == (
        "phyll", False, 3, 16,
    )  # fmt: skip
    assert entry_config("pat", base, seed=3).use_physics


def _run(seed, accs, wall_per_epoch=1.0):
    history = [
        {"epoch": e + 1, "val_accuracy": a, "wall_time_s_training": wall_per_epoch * (e + 1),
         "wall_time_s_setup": 0.5, "digital_flops_training": 400 * (e + 1),
         "digital_flops_setup": 100, "physical_queries_training": 10 * (e + 1),
         "physical_queries_setup": 5, "projected_time_s_setup": 1.0,
         "projected_time_s_training": 2.0 * (e + 1)}
        for e, a in enumerate(accs)
    ]  # fmt: skip
    summary = {"seed": seed, "test_accuracy": max(accs), "epochs": len(accs), "model_free": True}
    for quantity in QUANTITIES:
        for suffix, value in (("", 10), ("_setup", 1), ("_training", 8), ("_evaluation", 1)):
            summary[quantity + suffix] = value * (100 if quantity == "digital_flops" else 1)
    summary["device_time_s_training"] = 0.8
    return {"summary": summary, "history": history}


def test_aggregate_means_stds_and_cost_to_target_on_validation():
    assert cost_to_target(_run(0, [0.5, 0.95, 0.97])["history"], 0.9) == {
        "epochs": 2, "digital_flops": 900, "wall_time_s": 2.5, "physical_queries": 25,
        "projected_time_s": 5.0,
    }  # fmt: skip
    assert cost_to_target(_run(0, [0.5, 0.6])["history"], 0.9) is None
    agg = aggregate([_run(0, [0.5, 0.9]), _run(1, [0.7, 0.8]), _run(2, [0.95, 0.9])], 0.9)
    assert agg["test_accuracy_mean"] == pytest.approx((0.9 + 0.8 + 0.95) / 3)
    assert agg["test_accuracy_std"] == pytest.approx(0.0763762615)  # sample std
    assert agg["seeds_reaching_target"] == 2
    assert agg["epochs_to_target"] == pytest.approx(1.5)
    assert agg["digital_flops_per_epoch"] == 400
    assert agg["projected_time_to_target_s"] == pytest.approx((5.0 + 3.0) / 2)
    assert agg["offloaded_per_learner_flop"] == pytest.approx(10 / 1000)  # per run, then mean
    table = markdown_table({"phyll": agg}, 3)
    assert "| phyll | 88.3 ± 7.6 | 1.5 ± 0.7 (2/3) |" in table
    assert table.splitlines()[-1].endswith("| 10 | 0.01 |")  # offloaded, its ratio


def test_controls_make_no_physical_query_and_the_physics_gain_is_reported(tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", "--rules", "phyll,phyll-nophysics,random-features,linear,mlp",
            "--seeds", "2", "--epochs", "2", "--width", "16", "--measurements", "32",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    rules = summary["rules"]
    for control in ("phyll-nophysics", "random-features", "linear", "mlp"):
        assert rules[control]["physical_queries"] == 0, control  # digital: no hardware
        assert rules[control]["digital_flops"] > 0, control
    assert rules["phyll"]["physical_queries"] > 0
    # random features do the work a system would, digitally: far more FLOPs than no physics
    assert rules["random-features"]["digital_flops"] > rules["phyll-nophysics"]["digital_flops"]
    gain = summary["physics_gain"]["vs_nophysics"]
    expected = [
        a - b
        for a, b in zip(
            rules["phyll"]["test_accuracy_per_seed"],
            rules["phyll-nophysics"]["test_accuracy_per_seed"],
            strict=True,
        )
    ]
    assert gain["per_seed"] == pytest.approx(expected)
    assert summary["physics_gain"]["vs_random_features"]["control"] == "random-features"
    assert "Physics gain, phyll − phyll-nophysics" in (out / "table.md").read_text()
    config = json.loads((out / "runs" / "random-features-seed0" / "config.json").read_text())
    assert config["resolved"]["systems"][0]["class"] == "RandomFeatures"


def test_unsupervised_phyll_has_its_own_controls_and_physics_gain():
    base = TrainConfig(dataset="mnist5k", system="optical")
    for entry, use_physics, system in [
        ("phyll-unsup-nophysics", False, "optical"),
        ("phyll-unsup-random-features", True, "random-features"),
    ]:
        config = entry_config(entry, base, seed=1)
        assert (config.rule, config.use_physics, config.system) == (
            "phyll-unsup",
            use_physics,
            system,
        )
    rules = {
        "phyll-unsup": {"test_accuracy_per_seed": [0.95, 0.93]},
        "phyll-unsup-nophysics": {"test_accuracy_per_seed": [0.90, 0.89]},
    }
    gains = physics_gain(rules)
    assert list(gains) == ["unsup_vs_nophysics"]
    assert gains["unsup_vs_nophysics"]["per_seed"] == pytest.approx([0.05, 0.04])
    assert "Physics gain, phyll-unsup − phyll-unsup-nophysics: +4.5" in gain_lines(gains)


def test_an_interrupted_comparison_keeps_its_finished_runs(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--rules", "phyll,linear", "--seeds", "1", "--epochs", "1", "--width",
            "16", "--measurements", "32", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    kept = out / "runs" / "phyll-seed0" / "summary.json"
    before = kept.read_bytes(), kept.stat().st_mtime_ns
    (out / "summary.json").unlink()  # stopped before the comparison's own summary
    assert main(argv) == 0
    assert (kept.read_bytes(), kept.stat().st_mtime_ns) == before  # not trained again
    (out / "summary.json").unlink()
    assert main([*argv, "--width", "8"]) == 2  # the last --width wins
    assert "another configuration" in capsys.readouterr().err
    assert kept.read_bytes() == before[0]


def test_phyll_is_drawn_on_top_of_every_other_entry():
    others = [line_style(e) for e in ("pat", "random-features", "mlp-matched", "phyll-nophysics")]
    assert all(line_style("phyll")["zorder"] > o["zorder"] for o in others)


def _rules_times_aside(out):
    rules = json.loads((out / "summary.json").read_text())["rules"]
    return {
        entry: {k: v for k, v in row.items() if "time" not in k and not k.endswith("_s")}
        for entry, row in rules.items()
    }


def test_an_interrupted_comparison_finishes_with_resume_as_if_never_stopped(tmp_path):
    """SIGINT in the middle of `phyll compare`, then `phyll compare --resume DIR`: the same
    rules in summary.json as an uninterrupted comparison, times aside."""
    options = ["--dataset", "vowels", "--rules", "phyll,pat", "--seeds", "2", "--epochs", "4",
               "--width", "16", "--measurements", "32", "--quiet"]  # fmt: skip
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert main(["compare", *options, "--out", str(reference)]) == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", "compare", *options, "--out", str(stopped)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (stopped / "runs" / "phyll-seed1" / "checkpoint.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, "no second run started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130, process.stderr.read()
    assert not (stopped / "summary.json").exists()
    assert main(["compare", "--resume", str(stopped), "--quiet"]) == 0
    assert _rules_times_aside(stopped) == _rules_times_aside(reference)
    assert main(["compare", "--resume", str(stopped)]) == 0  # finished: nothing trained


def test_resume_needs_a_comparison_folder(tmp_path, capsys):
    assert main(["compare", "--resume", str(tmp_path)]) == 2
    assert "holds no comparison" in capsys.readouterr().err
