"""Hardware in the loop, end to end: `phyll serve` in a subprocess, training through it, faults.

Nothing here depends on machine load (these tests pass beside a CPU burner on every core):
a server is used once it has printed its "serving ... on tcp://..." line, a killed server is
restarted only once the client has noticed it (its first timeout), and the reply timeout is
scaled from round trips measured against the live server, with a generous floor. Only a failing
test waits for a deadline.
"""

from __future__ import annotations

import math
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from phyll.cli import main
from phyll.experiments.config import TrainConfig
from phyll.experiments.run_folder import RunFolder
from phyll.experiments.train import TrainingError, resume, train
from phyll.remote import RemoteBlockSystem, RemoteSystem, RemoteTimeoutError

CHANNELS = 24  # the served cavity: 24 loudspeakers → 24 measured bins (fits every block)
CONFIG = dict(dataset="vowels", epochs=3, width=CHANNELS, measurements=CHANNELS)
#: seconds a `phyll serve` may take to start (importing torch on a saturated machine: ~45 s)
STARTUP_S = 300.0
#: the reply timeout is this many times the slowest measured round trip, and at least...
TIMEOUT_FACTOR, TIMEOUT_FLOOR_S = 50, 3.0


class Servers:
    """Starts `phyll serve acoustic` subprocesses; the fixture terminates them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def start(self, port: int = 0) -> str:
        log = (self.log_dir / f"server{len(self.procs)}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "phyll.cli", "serve", "acoustic", "--port", str(port),
             "--param", f"n_inputs={CHANNELS}", "--param", f"n_outputs={CHANNELS}"],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], STARTUP_S)
        line = proc.stdout.readline() if ready else ""
        if " on tcp://" not in line:
            pytest.fail(f"phyll serve did not start: {line!r}")
        return line.rsplit(" on ", 1)[1].strip()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture
def servers(tmp_path) -> Iterator[Servers]:
    s = Servers(tmp_path)
    yield s
    s.stop_all()


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def patient_timeout(address: str) -> float:
    """A reply timeout no load can reach by itself: the slowest of a few round trips (a
    measurement of a full batch) to the live server, times :data:`TIMEOUT_FACTOR`, at least
    :data:`TIMEOUT_FLOOR_S` (under 8 busy loops on 2 cores the slowest was ~60 ms)."""
    probe = RemoteSystem(address, timeout_s=STARTUP_S)
    slowest = 0.0
    for _ in range(5):
        start = time.monotonic()
        probe(torch.rand(32, CHANNELS))
        slowest = max(slowest, time.monotonic() - start)
    probe.close()
    return max(TIMEOUT_FLOOR_S, math.ceil(TIMEOUT_FACTOR * slowest))


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = STARTUP_S) -> None:
    """Poll ``condition`` until it holds (a deadline only a broken test reaches)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {limit_s:g} s")
        time.sleep(0.01)


def test_training_through_phyll_serve_reaches_the_in_process_accuracy(servers, tmp_path):
    address = servers.start()
    local = train(TrainConfig(**CONFIG), progress=False)
    remote_config = TrainConfig(**CONFIG, system="remote", system_params={"address": address})
    remote = train(remote_config, tmp_path / "remote", progress=False)
    assert local["test_accuracy"] > 0.8 and remote["test_accuracy"] > 0.8
    assert abs(remote["test_accuracy"] - local["test_accuracy"]) <= 0.1
    driven = ("physical_queries_training", "physical_queries_evaluation")
    assert [remote[k] for k in driven] == [local[k] for k in driven]
    # no fault: the server drove exactly the samples the clients counted
    served = RemoteSystem(address, timeout_s=STARTUP_S).server_queries()
    assert served == sum(remote[k] for k in driven)
    config = RunFolder(tmp_path / "remote").read_json(tmp_path / "remote" / "config.json")
    assert config["resolved"]["systems"][0]["served"]["class"] == "AcousticCavity"

    # a served system that does not fit the network is a clear one-line error
    code = main(["train", "--system", "remote", "--system-param", f"address={address}",
                 "--measurements", "32", "--quiet", "--out", str(tmp_path / "bad")])  # fmt: skip
    assert code == 2


class KillingRemote(RemoteBlockSystem):
    """Kills the server at a given call of block 0 (mid-epoch), optionally restarting it once
    this client has timed out on it (so the timeout path runs whatever the load)."""

    def __init__(self, *args, servers, kill_at, restart, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.servers, self.kill_at, self.restart, self.calls = servers, kill_at, restart, 0

    def _measure(self, drive: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.kill_at:
            self.servers.procs[-1].kill()
            self.servers.procs[-1].wait(timeout=STARTUP_S)
            if self.restart:
                threading.Thread(target=self._restart_after_a_timeout, daemon=True).start()
        return super()._measure(drive)

    def _restart_after_a_timeout(self) -> None:
        wait_until(lambda: self.timeouts >= 1, "the client to time out on the killed server")
        self.servers.start(port_of(self.address))


def killing_factory(servers, params, restart, built=None):
    def factory(i: int, n_in: int, n_out: int):
        kill_at = 20 if i == 0 else None  # block 0's 20th call: step 3 of epoch 2
        system = KillingRemote(n_in, n_out, servers=servers, kill_at=kill_at, restart=restart,
                               **params)  # fmt: skip
        if built is not None:
            built.append(system)
        return system

    return factory


def test_server_killed_mid_epoch_and_restarted_training_continues(servers, tmp_path):
    address = servers.start()
    timeout_s = patient_timeout(address)
    # retries cover a restart that takes up to STARTUP_S; only the restart consumes them
    params = {
        "address": address,
        "timeout_s": timeout_s,
        "retries": math.ceil(STARTUP_S / timeout_s),
    }
    config = TrainConfig(**CONFIG, system="remote", system_params=params)
    systems: list = []
    factory = killing_factory(servers, params, restart=True, built=systems)
    summary = train(config, tmp_path / "run", progress=False, system_factory=factory)
    assert len(servers.procs) == 2 and summary["epochs"] == 3
    assert summary["test_accuracy"] > 0.8
    assert all(s.server_restarts == 1 for s in systems)
    assert systems[0].timeouts >= 1
    assert [m["epoch"] for m in RunFolder(tmp_path / "run").read_metrics()] == [1, 2, 3]


def test_server_killed_for_good_stops_with_one_line_and_a_resumable_checkpoint(
    servers, tmp_path, capsys
):
    address = servers.start()
    # two attempts: giving up on the dead server takes 2 timeouts (twice), a spurious give-up
    # would take two consecutive stalls of 50x the slowest round trip
    params = {"address": address, "timeout_s": patient_timeout(address), "retries": 1}
    config = TrainConfig(**CONFIG, system="remote", system_params=params, checkpoint_every=2)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as exc:
        train(config, out, progress=False,
              system_factory=killing_factory(servers, params, restart=False))  # fmt: skip
    message = str(exc.value)
    assert "\n" not in message and "no reply from" in message and "phyll.resume(" in message
    state = RunFolder(out).load(out / "checkpoint.pt")  # not corrupted, mid-epoch
    assert state["epoch"] == 1 and state["epoch_progress"]["step"] > 0
    assert "epoch 2" in message and f"(epoch 1, step {state['global_step']})" in message
    assert len(RunFolder(out).read_metrics()) == 1

    # the CLI cannot rebuild systems made by a Python factory: one clear line, exit status 2
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "resume it from Python" in err and "Traceback" not in err

    def plain(i: int, n_in: int, n_out: int) -> RemoteBlockSystem:
        return RemoteBlockSystem(n_in, n_out, **params)

    with pytest.raises(RemoteTimeoutError, match="no reply from"):  # the device is still down
        resume(out, progress=False, system_factory=plain)
    servers.start(port_of(address))  # the device is back
    resume(out, progress=False, system_factory=plain)
    assert [m["epoch"] for m in RunFolder(out).read_metrics()] == [1, 2, 3]
    summary = RunFolder(out).read_json(out / "summary.json")
    assert summary["test_accuracy"] > 0.8
