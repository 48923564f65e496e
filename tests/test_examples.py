"""The examples run as they are, at a small size (examples/: own CSV, Python API, lab driver)."""

from __future__ import annotations

import dataclasses
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


@pytest.fixture
def served_instrument(tmp_path) -> Iterator[str]:
    """`phyll serve` of the lab-instrument template (with failed readings); its address."""
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", "serve", "examples.lab_instrument.driver:MyInstrument",
         "--port", "0", "--param", "glitch_rate=0.05", "--param", "settle_s=0.0005"],
        stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, env=environment(),
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


def test_lab_instrument_template_trains_through_phyll_serve(served_instrument, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--system", "remote", "--system-param", f"address={served_instrument}",
            "--system-param", "timeout_s=60", "--width", "24", "--measurements", "24",
            "--epochs", "2", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_accuracy"] > 2 * summary["chance_accuracy"]
    served = summary["systems"][0]["served"]
    assert served["class"] == "MyInstrument" and served["drive_range"] == [0.0, 5.0]
    assert served["calibration_queries"] >= 16 and summary["energy_j"] > 0


def test_lab_instrument_declares_range_calibration_and_refuses_nan():
    sys.path.insert(0, str(ROOT))
    try:
        from examples.lab_instrument.driver import MyInstrument
    finally:
        sys.path.remove(str(ROOT))
    import torch

    from phyll.systems.base import DriveError, NonFiniteMeasurementError, PhysicalSystemError

    device = MyInstrument(n_inputs=4, n_outputs=3, calibration_reads=2)
    assert device.energy_per_query_j == pytest.approx(0.5 * 1e-3)
    assert device.calibration_queries == 2 and device(torch.full((2, 4), 5.0)).shape == (2, 3)
    with pytest.raises(DriveError, match="outside"):
        device(torch.full((1, 4), 6.0))
    device.hardware.params = dataclasses.replace(device.params, glitch_rate=1.0)
    with pytest.raises(NonFiniteMeasurementError):
        device(torch.full((2, 4), 1.0))
    with pytest.raises(PhysicalSystemError, match="calibration failed"):
        MyInstrument(n_inputs=4, n_outputs=3, glitch_rate=1.0, calibration_reads=2)
