"""A lab-instrument driver template: a :class:`~phyll.systems.PhysicalSystem` to copy and fill in.

``MyInstrument`` drives a bank of ``n_inputs`` voltage outputs (0 … ``max_volts``) and reads
``n_outputs`` detector channels. Here the hardware is simulated (:class:`SimulatedHardware`:
a fixed random medium, square-law detectors, a dark offset, noise and rare failed readings);
replace its two methods (``write``/``read``) with calls to your instrument and keep the rest.

What a driver declares, and why:

* **drive range** (``drive_range``, ``out_of_range="raise"``): phyll maps every drive into the
  range before calling :meth:`_measure`; ``"raise"`` refuses anything outside it, so a bug can
  never push the hardware beyond its rating.
* **calibration** (:meth:`calibrate`): the dark level is measured once, when the driver is
  built; the drives it took are declared in ``calibration_queries`` so that a run counts them
  as physical queries of its *setup* phase.
* **latency, device time, energy** (``measurement_time_s``, ``power_w``): the device time of
  one query and the power while measuring; each run reports ``queries × measurement_time_s``
  as projected hardware time and ``power_w × measurement_time_s`` as energy per query.
  ``settle_s`` really waits (as the instrument would) so the wall time shows the latency.
* **NaN** (failed readings): never invent a number. Return NaN for a reading that failed; the
  base class refuses the measurement (:class:`~phyll.systems.base.NonFiniteMeasurementError`),
  ``phyll serve`` reports it to the client, and ``RemoteSystem`` measures the batch again
  (``nonfinite="remeasure"``, counted as queries) or stops the run (``nonfinite="raise"``).

Train with it in-process, or serve it and train through it (from the repository root, so that
``examples`` imports); a served device is used as it is (24 → 24 here: no size flags), and its
declared time, power and calibration drives reach the run's costs as in-process::

    PYTHONPATH=. phyll train --system examples.lab_instrument.driver:MyInstrument --out runs/lab
    PYTHONPATH=. phyll serve examples.lab_instrument.driver:MyInstrument \\
        --param n_inputs=24 --param n_outputs=24 --param glitch_rate=0.01 --port 5555
    phyll train --system remote --system-param address=tcp://127.0.0.1:5555 --out runs/lab-served
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from phyll.params import param
from phyll.systems import PhysicalSystem
from phyll.systems.base import PhysicalSystemError


@dataclass(frozen=True)
class MyInstrumentParams:
    """The instrument's settings (``--param NAME=VALUE``; ``phyll list --params`` style)."""

    max_volts: float = param(5.0, "largest output voltage the hardware accepts", "V")
    noise_std: float = param(1e-3, "detector noise", "V")
    glitch_rate: float = param(0.0, "probability that a batch reading fails (read as NaN)")
    measurement_time_s: float = param(1e-3, "device time of one query (integration)", "s")
    power_w: float = param(0.5, "power drawn while measuring", "W")
    settle_s: float = param(0.0, "real wait per batch (the hardware's latency)", "s")
    calibration_reads: int = param(16, "zero-drive reads averaged for the dark level")
    seed: int = param(0, "seed of the simulated hardware (its medium and noise)")


class SimulatedHardware:
    """Stands in for the instrument: replace ``write`` and ``read`` with your driver calls."""

    def __init__(self, n_inputs: int, n_outputs: int, params: MyInstrumentParams) -> None:
        self.rng = np.random.default_rng(params.seed)
        self.medium = self.rng.normal(size=(n_outputs, n_inputs)) / np.sqrt(n_inputs)
        self.dark = 0.05 + 0.01 * self.rng.random(n_outputs)
        self.params = params
        self.volts = np.zeros((1, n_inputs))

    def write(self, volts: np.ndarray) -> None:
        """Set the output voltages, one row per sample (e.g. an AWG sequence)."""
        self.volts = volts

    def read(self) -> np.ndarray:
        """Read every detector for every sample written; a failed reading is NaN."""
        time.sleep(self.params.settle_s)
        field = self.volts / self.params.max_volts @ self.medium.T
        reading = field**2 + self.dark + self.rng.normal(0, self.params.noise_std, field.shape)
        if self.rng.random() < self.params.glitch_rate:
            reading[:] = np.nan  # e.g. a dropped USB frame: the driver reports it, never guesses
        return reading


class MyInstrument(PhysicalSystem):
    """A voltage-driven, square-law instrument (see the module docstring)."""

    Params = MyInstrumentParams

    def __init__(
        self,
        n_inputs: int = 24,
        n_outputs: int = 24,
        params: MyInstrumentParams | None = None,
        **overrides: object,
    ) -> None:
        p = self.resolve_params(params, overrides)
        super().__init__(
            n_inputs,
            n_outputs,
            drive_range=(0.0, p.max_volts),
            out_of_range="raise",
            power_w=p.power_w,
            measurement_time_s=p.measurement_time_s,
        )
        self.params = p
        self.hardware = SimulatedHardware(n_inputs, n_outputs, p)
        self.dark = self.calibrate()

    def calibrate(self) -> np.ndarray:
        """The dark level: the mean reading at zero drive (subtracted from every measurement)."""
        reads = []
        for _ in range(2 * self.params.calibration_reads):  # a failed read is repeated, once
            self.hardware.write(np.zeros((1, self.n_inputs)))
            reading = self.hardware.read()[0]
            self.calibration_queries += 1
            if np.isfinite(reading).all():
                reads.append(reading)
            if len(reads) == self.params.calibration_reads:
                return np.mean(reads, axis=0)
        raise PhysicalSystemError(
            f"MyInstrument: calibration failed ({len(reads)} of "
            f"{self.params.calibration_reads} dark reads valid): check the detector"
        )

    def _measure(self, drive: Tensor) -> Tensor:
        self.hardware.write(drive.double().cpu().numpy())
        return torch.as_tensor(self.hardware.read() - self.dark, dtype=torch.float32)
