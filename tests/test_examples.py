"""The examples run as they are, at a small size (examples/: own CSV, Python API, lab driver)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from phyll.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
LAB = "examples.lab_instrument.driver:MyInstrument"
#: seconds a `phyll serve` may take to start (importing torch on a saturated machine)
STARTUP_S = 300.0


def environment() -> dict[str, str]:
    """This interpreter's environment with phyll's sources and the repository importable."""
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def run_example(script: str, tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--workdir", str(tmp_path), *args],
        capture_output=True, text=True, env=environment(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_own_csv_trains_resumes_and_predicts_class_names(tmp_path):
    out = run_example("own_csv.py", tmp_path, "--epochs", "3")
    assert "$ phyll train --resume" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["test_accuracy"] > summary["chance_accuracy"]
    predicted = out.split("new_wines.csv\n", 1)[1].split("true cultivars")[0].split()
    assert len(predicted) == 6 and set(predicted) <= {"barolo", "grignolino", "barbera"}
    header = (tmp_path / "preds.csv").read_text().splitlines()[0]
    assert header == "prediction,score_barbera,score_barolo,score_grignolino"


def test_python_api_goes_from_arrays_to_predicted_names(tmp_path):
    out = run_example("python_api.py", tmp_path, "--epochs", "2")
    assert "predicted: ['" in out and "setosa" in out and "test accuracy" in out


def test_fixed_size_speaker_array_trains_with_no_size_flags_and_evaluates(tmp_path):
    out = run_example("speaker_array.py", tmp_path, "--epochs", "3")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["system"], config["width"], config["measurements"]) == (
        "speaker_array:make",
        20,
        20,
    )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_accuracy"] > 2 * summary["chance_accuracy"]
    assert "the run's own test split" in out


@contextlib.contextmanager
def phyll_serve(log: Path, *params: str) -> Iterator[str]:
    """`phyll serve` of the lab-instrument template in a subprocess, with ``--param``
    ``params``; its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", "serve", LAB, "--port", "0",
         *(f"--param={p}" for p in params)],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=ROOT, env=environment(),
    )  # fmt: skip
    try:
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_S)
        line = proc.stdout.readline() if ready else ""
        if " on tcp://" not in line:
            pytest.fail(f"phyll serve did not start: {line!r}")
        yield line.rsplit(" on ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def served_instrument(tmp_path) -> Iterator[str]:
    """`phyll serve` of the lab-instrument template (with failed readings); its address."""
    with phyll_serve(tmp_path / "server.log", "glitch_rate=0.05", "settle_s=0.0005") as address:
        yield address


@pytest.fixture
def repository_importable(monkeypatch) -> None:
    """`examples.lab_instrument.driver` importable in this process (as with PYTHONPATH=.)."""
    monkeypatch.syspath_prepend(str(ROOT))


def train_in_process(out: Path, *options: str) -> dict:
    argv = ["train", "--system", LAB, "--epochs", "2", "--out", str(out), "--quiet", *options]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def test_lab_instrument_template_trains_in_process_and_through_phyll_serve(
    repository_importable, served_instrument, tmp_path
):
    local = train_in_process(tmp_path / "local")
    assert local["test_accuracy"] > 2 * local["chance_accuracy"]
    out = tmp_path / "run"
    argv = [
        "train",
        "--system",
        "remote",
        "--system-param",
        f"address={served_instrument}",
        "--system-param",
        "timeout_s=60",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]  # fmt: skip  (no size flags: the served device is 24 → 24)
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] > 2 * summary["chance_accuracy"]
    assert (summary["width"], summary["systems"][0]["n_outputs"]) == (24, 24)
    served = summary["systems"][0]["served"]
    assert served["class"] == "MyInstrument" and served["drive_range"] == [0.0, 5.0]
    assert summary["physical_queries_setup"] >= 16 and summary["device_time"] == "declared"
    per_query = [s["device_time_s"] / s["physical_queries"] for s in (summary, local)]
    assert per_query[0] == pytest.approx(per_query[1], rel=0.05)


def test_a_served_device_costs_what_it_costs_in_process(repository_importable, tmp_path):
    """Device time, energy and setup queries of the template behind `phyll serve` equal those
    of the same device (same seed) in-process."""
    local = train_in_process(
        tmp_path / "local",
        "--blocks",
        "1",
        "--width",
        "24",
        "--measurements",
        "24",
        "--system-param",
        "n_inputs=24",
    )  # fmt: skip  (as served)
    with phyll_serve(tmp_path / "server.log") as address:
        served = train_in_process(tmp_path / "served", "--blocks", "1", "--system", "remote",
                                  "--system-param", f"address={address}")  # fmt: skip
    for key in ("device_time_s", "physical_queries_setup", "physical_queries", "test_accuracy"):
        assert served[key] == local[key], key
    assert served["energy_j"] == pytest.approx(local["energy_j"], rel=1e-9)
    assert local["physical_queries_setup"] == 16 and served["device_time"] == "declared"
