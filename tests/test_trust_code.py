"""A run folder never runs code by itself: a recorded system or rule that is not phyll's own is
imported only with --trust-code (trust_code=True), and a recorded name of neither form is
refused before anything is imported. A tampered folder, with a marker-writing module on the
import path, goes through predict, evaluate, report, load_run and --resume."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import phyll
from phyll.cli import main
from phyll.experiments.config import TrainConfig
from phyll.usercode import CodeNotTrustedError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(dataset="vowels", epochs=1, blocks=1, width=16, measurements=16)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A small finished run folder (config.json, checkpoint.pt, model.pt, summary.json)."""
    out = tmp_path_factory.mktemp("trust") / "run"
    phyll.train(TrainConfig(**SMALL), out, progress=False)
    return out


def tampered(run: Path, tmp_path: Path, **names: str) -> Path:
    """A copy of ``run`` whose every record (config.json, checkpoint.pt, model.pt) names
    ``names`` (e.g. ``system="evilmod:Device"``), without the checksum manifest (as a
    tamperer would leave it): the trust gate alone must stop it."""
    copy = tmp_path / "handed-over"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **names}))
    for name in ("checkpoint.pt", "model.pt"):
        state = torch.load(copy / name, weights_only=True)
        state["config"].update(names)
        torch.save(state, copy / name)
    (copy / "manifest.json").unlink()  # else the checksums refuse the edited files first
    return copy


@pytest.fixture
def evil(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A module on the import path that writes a marker file when imported: (name, marker)."""
    name = f"evilmod_{os.getpid()}_{tmp_path.name.replace('-', '_')}"
    marker = tmp_path / "marker"
    (tmp_path / f"{name}.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\nDevice = Rule = 1\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, marker
    sys.modules.pop(name, None)


def one_line_refusal(capsys, module: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"module {module!r}" in err and "--trust-code" in err, err
    return err


def test_a_tampered_system_runs_nothing_through_any_command(finished_run, tmp_path, evil, capsys):
    module, marker = evil
    run = tampered(finished_run, tmp_path, system=f"{module}:Device")
    rows = tmp_path / "rows.csv"
    names = json.loads((run / "config.json").read_text())["resolved"]["dataset"]["feature_names"]
    rows.write_text(",".join(names) + "\n" + ",".join("0.5" for _ in names) + "\n")
    for argv in (
        ["predict", str(run), str(rows)],
        ["evaluate", str(run), "--dataset", "vowels"],
        ["train", "--resume", str(run)],
    ):
        assert main(argv) == 2, argv
        one_line_refusal(capsys, module)
    assert main(["report", str(run)]) == 0  # reads the records, imports nothing
    with pytest.raises(CodeNotTrustedError, match=f"module '{module}'.*trust_code=True"):
        phyll.load_run(run)
    with pytest.raises(CodeNotTrustedError, match=f"module '{module}'"):
        phyll.resume(run)
    assert not marker.exists() and module not in sys.modules
    # the gate is what stopped it: with consent, the module is imported
    with pytest.raises(ValueError, match="is not a class or function"):
        phyll.load_run(run, trust_code=True)
    assert marker.read_text() == "ran"


def test_a_tampered_rule_and_a_name_of_neither_form_are_refused(
    finished_run, tmp_path, evil, capsys
):
    module, marker = evil
    run = tampered(finished_run, tmp_path, rule=f"{module}:Rule")
    assert main(["train", "--resume", str(run)]) == 2
    one_line_refusal(capsys, module)
    with pytest.raises(CodeNotTrustedError, match="trust_code=True"):
        phyll.load_run(run, trust_code={f"{module}:Other"})  # trusting another name
    assert not marker.exists() and module not in sys.modules
    odd = tampered(finished_run, tmp_path / "odd", system=f"{module}.py; rm -rf x")
    with pytest.raises(CodeNotTrustedError, match="neither a registered system nor MODULE:NAME"):
        phyll.load_run(odd, trust_code=True)  # not even with consent
    assert not marker.exists()


def test_phyll_predict_in_a_new_process_exits_2_in_one_line(finished_run, tmp_path, evil):
    module, marker = evil
    run = tampered(finished_run, tmp_path, system=f"{module}:Device")
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-m", "phyll.cli", "predict", str(run), str(rows)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"module {module!r}" in done.stderr and not marker.exists()


def test_the_same_system_given_again_is_consent(tmp_path, capsys):
    """`phyll train --resume DIR --system MODULE:NAME` trusts that name (and only it)."""
    out = tmp_path / "run"
    argv = ["train", "--system", "tests.conftest:numpy_square_law", "--epochs", "1", "--blocks",
            "1", "--width", "8", "--measurements", "8", "--out", str(out), "--quiet"]  # fmt: skip
    sys.path.insert(0, str(ROOT))
    try:
        assert main(argv) == 0
        (out / "summary.json").unlink()  # unfinished again: resume trains nothing new
        assert main(["train", "--resume", str(out), "--system", "acoustic"]) == 2
        assert "tests.conftest" in capsys.readouterr().err
        assert main(["train", "--resume", str(out), "--system", argv[2], "--quiet"]) == 0
    finally:
        sys.path.remove(str(ROOT))


@pytest.mark.parametrize(
    ("command", "record", "name"),
    [
        ("depth", {"config": {"system": "{m}:Device", "rule": "phyll"}, "depths": [1]},
         "depth_config.json"),
        ("robustness", {"train": {"system": "acoustic", "rule": "phyll"}, "rules": ["{m}:R"]},
         "robustness_config.json"),
        ("sweep", {"base_config": {"system": "acoustic", "rule": "phyll"},
                   "params": ["rule=phyll, {m}:R"]}, "sweep_config.json"),
    ],
)  # fmt: skip
def test_experiment_folders_resume_only_trusted_code(command, record, name, tmp_path, evil, capsys):
    module, marker = evil
    folder = tmp_path / "experiment"
    folder.mkdir()
    (folder / name).write_text(json.dumps(record).replace("{m}", module))
    assert main([command, "--resume", str(folder)]) == 2
    one_line_refusal(capsys, module)
    assert not marker.exists() and module not in sys.modules


def test_a_system_edited_in_config_json_alone_is_refused_by_predict(
    finished_run, tmp_path, evil, capsys
):
    """The done-when case: only config.json is edited to name the marker-writing module."""
    module, marker = evil
    copy = tmp_path / "edited"
    shutil.copytree(finished_run, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "system": f"{module}:Device"}))
    rows = tmp_path / "rows.csv"
    rows.write_text(",".join(f"f{i}" for i in range(2)) + "\n0,0\n")
    assert main(["predict", str(copy), str(rows)]) == 2
    one_line_refusal(capsys, module)
    assert not marker.exists() and module not in sys.modules
    (copy / "config.json").write_text(json.dumps({**config, "system": "microwave"}))
    with pytest.raises(phyll.UserError, match="the run folder was edited"):
        phyll.load_run(copy)
