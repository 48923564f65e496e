"""``phyll frontier``: points of several sizes, the Pareto front, the physics advantage, reuse
of finished runs, folders that are not its own refused, and the report."""

from __future__ import annotations

import json

import pytest

from phyll.cli import main
from phyll.experiments.config import TrainConfig
from phyll.experiments.frontier import mark_frontier, plan, run_frontier
from phyll.experiments.run_folder import RunFolderError
from phyll.report import write_report


def row(name: str, family: str, accuracy: float, flops: float) -> dict:
    return {"name": name, "family": family, "test_accuracy": accuracy,
            "digital_flops_per_inference": flops}  # fmt: skip


def test_the_front_and_the_physics_advantage():
    rows = mark_frontier([
        row("mlp-small", "mlp", 0.90, 100), row("mlp-big", "mlp", 0.95, 1000),
        row("pnn-a", "pnn", 0.93, 500), row("pnn-b", "pnn", 0.97, 2000),
        row("pnn-c", "pnn", 0.80, 50),
    ])  # fmt: skip
    pareto = {r["name"] for r in rows if r["pareto"]}
    assert pareto == {"mlp-small", "mlp-big", "pnn-a", "pnn-b", "pnn-c"}  # none dominated
    a, b, c = (next(r for r in rows if r["name"] == n) for n in ("pnn-a", "pnn-b", "pnn-c"))
    assert a["physics_advantage"] == pytest.approx(0.93 - 0.90)  # mlp-small is cheaper
    assert b["physics_advantage"] == pytest.approx(0.97 - 0.95)
    assert c["physics_advantage"] is None  # no digital model is that cheap
    dominated = mark_frontier([row("x", "mlp", 0.9, 10), row("y", "pnn", 0.85, 20)])
    assert [r["pareto"] for r in dominated] == [True, False]


def test_the_plan_varies_one_size_at_a_time_around_the_default():
    base = TrainConfig(dataset="vowels")  # tabular profile: 2 blocks, width 64, 128 measured
    points = plan(base, ["pnn", "random-features", "mlp", "linear"])
    names = [p.name for p in points]
    assert len(names) == len(set(names))
    assert "pnn-m128-w64-b2" in names and "pnn-m16-w64-b2" in names and "pnn-m128-w16-b2" in names
    assert {"pnn-m128-w64-b1", "pnn-m128-w64-b3"} <= set(names)
    noskip, readout = (next(p.config for p in points if p.name == n) for n in
                       ("pnn-m128-w64-b2-noskip", "pnn-m128-w64-b2-readout"))  # fmt: skip
    assert not noskip.skip and readout.rule_params["prediction"] == "readout"
    assert all(
        p.config.system == "random-features" for p in points if p.family == "random-features"
    )
    assert all(not p.config.use_physics for p in points if p.family in ("mlp", "linear"))
    optical = plan(TrainConfig(dataset="mnist5k", system="optical"), ["pnn"])
    assert any(p.config.pool > 1 for p in optical)  # camera pixels pooled


def test_a_small_frontier_end_to_end_reuses_its_runs_and_reports(tmp_path):
    base = TrainConfig(dataset="vowels", epochs=1, width=8, measurements=16, blocks=1)
    out = tmp_path / "frontier"
    result = run_frontier(base, ["pnn", "linear"], [0], out, progress=False)
    assert json.loads((out / "frontier.json").read_text())["format"] == "phyll-frontier/1"
    assert {r["family"] for r in result["points"]} == {"pnn", "linear"}
    for r in result["points"]:
        assert r["digital_flops_per_inference"] > 0 and 0 <= r["test_accuracy"] <= 1
        assert (r["physical_queries"] > 0) == (r["family"] == "pnn")
    for name in ("frontier_inference.png", "frontier_training.png", "frontier_queries.png"):
        assert (out / name).stat().st_size > 1000
    mtimes = {p: p.stat().st_mtime for p in (out / "runs").glob("*/summary.json")}
    again = run_frontier(base, ["pnn", "linear"], [0], out, progress=False)  # all reused
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
    assert again["points"] == result["points"]
    assert "frontier" in write_report(out).read_text()


def test_a_folder_that_is_not_a_frontier_is_refused(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("my notes")
    with pytest.raises(RunFolderError, match="not a frontier"):
        run_frontier(TrainConfig(epochs=1), ["linear"], [0], tmp_path, progress=False)
    assert (tmp_path / "mine.txt").read_text() == "my notes"
    assert main(["frontier", "--families", "quantum", "--out", str(tmp_path / "x")]) == 2
    assert "unknown frontier families" in capsys.readouterr().err
