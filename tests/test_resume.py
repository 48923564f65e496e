"""Nothing lost: signals checkpoint at a step boundary; resuming gives bit-identical results."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from phyll.cli import main
from phyll.experiments.build import build_experiment
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingInterrupted, resume, train
from phyll.registry import make_system
from phyll.systems.recording import SystemRecorder, read_records, replay
from tests.conftest import sigint_factory

SMALL = dict(dataset="vowels", epochs=3, width=24, measurements=24, checkpoint_every=4)


def final_weights(out) -> dict[str, torch.Tensor]:
    return RunFolder(out).load(out / "model.pt")["model"]


def assert_identical_runs(a, b) -> None:
    wa, wb = final_weights(a), final_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    sa, sb = RunFolder(a).read_json(a / "summary.json"), RunFolder(b).read_json(b / "summary.json")
    for key in ("test_accuracy", "physical_queries", "digital_flops", "queries_per_system"):
        assert sa[key] == sb[key], key
    ma, mb = RunFolder(a).read_metrics(), RunFolder(b).read_metrics()
    assert [m["epoch"] for m in mb] == [m["epoch"] for m in ma]  # appended once each
    for x, y in zip(ma, mb, strict=True):
        assert (x["loss"], x["val_accuracy"]) == (y["loss"], y["val_accuracy"])


def test_sigint_mid_epoch_then_resume_is_bit_identical_and_repeats_no_query(tmp_path):
    config = TrainConfig(**SMALL, record=True)
    reference = tmp_path / "reference"
    train(config, reference, progress=False, system_factory=sigint_factory(config))

    out = tmp_path / "interrupted"
    # block 1 is called once per training step and once per 512 samples evaluated (the
    # validation split after each epoch): stop at step 3 of epoch 2
    splits = build_experiment(config).splits
    steps = math.ceil(len(splits.y_train) / config.batch_size)
    evaluation_calls = math.ceil(len(splits.y_val) / 512)
    at_call = steps + evaluation_calls + 3
    with pytest.raises(TrainingInterrupted, match="resume"):
        train(config, out, progress=False, system_factory=sigint_factory(config, at_call))
    state = RunFolder(out).load(out / "checkpoint.pt")
    assert state["epoch"] == 1 and state["epoch_progress"]["step"] == 3
    assert state["global_step"] == steps + 3
    queries_at_stop = state["systems"][0]["queries"]
    assert len(RunFolder(out).read_metrics()) == 1

    resume(out, progress=False, system_factory=sigint_factory(config))
    assert_identical_runs(reference, out)
    summary = RunFolder(out).read_json(out / "summary.json")
    ref_state = RunFolder(reference).load(reference / "checkpoint.pt")
    assert summary["queries_per_system"][0] == ref_state["systems"][0]["queries"]
    assert queries_at_stop < summary["queries_per_system"][0]

    # the recorded drive/measurement series are identical too, and replayable
    for block in ("block0", "block1"):
        r_ref, r_out = (
            read_records(reference / "records" / block),
            read_records(out / "records" / block),
        )
        assert np.array_equal(r_ref.drive, r_out.drive)
        assert np.array_equal(r_ref.measurement, r_out.measurement)
    records = read_records(out / "records" / "block0")
    assert len(records.drive) == summary["queries_per_system"][0]
    fresh = make_system("acoustic", records.drive.shape[1], 24, seed=0, noise_std=0.0)
    again = replay(records, fresh, batch=4096)
    assert np.abs(again - records.measurement).mean() < 0.01  # same room, no noise


def test_recorder_truncates_pairs_made_after_the_checkpoint(tmp_path):
    rec = SystemRecorder(tmp_path / "block0", chunk_samples=5)
    for i in range(3):
        rec(torch.full((4, 2), float(i)), torch.full((4, 3), float(i)))  # 12 pairs, 2 chunks
    rec.flush()
    assert rec.written == 12
    again = SystemRecorder(tmp_path / "block0", chunk_samples=5)
    assert again.written == 12
    again.truncate(6)
    records = read_records(tmp_path / "block0")
    assert records.drive.shape == (6, 2) and records.measurement[-1, 0] == 1.0
    again(torch.full((1, 2), 9.0), torch.full((1, 3), 9.0))
    again.flush()
    assert read_records(tmp_path / "block0").drive[-1, 0] == 9.0


def test_sigterm_to_the_cli_then_resume_matches_an_uninterrupted_run(tmp_path):
    # many small steps (105 per epoch): the signal surely lands while training runs
    args = ["--epochs", "2", "--blocks", "1", "--batch-size", "4", "--width", "16",
            "--measurements", "16", "--checkpoint-every", "5", "--quiet"]  # fmt: skip
    reference = tmp_path / "reference"
    assert main(["train", *args, "--out", str(reference)]) == 0

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "phyll.cli", "train", *args, "--out", str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "checkpoint.pt").exists() and RunFolder(out).load(out / "checkpoint.pt")[
                "global_step"
            ]:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err  # stopped by the signal, not finished
    assert "SIGTERM" in err and "--resume" in err and "Traceback" not in err
    stopped = RunFolder(out).load(out / "checkpoint.pt")
    assert stopped["global_step"] < 2 * 105
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    assert_identical_runs(reference, out)


def test_resume_appends_metrics_lost_in_a_crash_and_cuts_a_torn_line(tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(dataset="vowels", epochs=2, width=8, measurements=8, blocks=1)
    train(config, out, progress=False)
    lines = (out / "metrics.jsonl").read_text().splitlines()
    # a crash after epoch 2's checkpoint, in the middle of appending its metrics line
    (out / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:25])
    resume(out, progress=False)
    assert (out / "metrics.jsonl").read_text().splitlines() == lines
