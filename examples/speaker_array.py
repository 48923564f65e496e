"""A fixed-size device of your own: 20 loudspeakers → 20 microphones, trained with no size flags.

``make`` takes no ``n_inputs`` / ``n_outputs``, so phyll sizes the network around the device:
block inputs = its 20 drives (vowels7's 12 features + 7 label channels, one left at zero),
measurements = its 20 microphones. Its noise comes from its own NumPy generator, which
``state_dict`` / ``load_state_dict`` hand to phyll, so an interrupted run resumes exactly.
From the command line (this folder on the import path)::

    PYTHONPATH=examples phyll train --dataset vowels7 --system speaker_array:make --out runs/sa
    PYTHONPATH=examples phyll train --resume runs/sa --trust-code     # after a Ctrl-C
    PYTHONPATH=examples phyll evaluate runs/sa --dataset vowels7 --trust-code

Usage of this script (the same three steps): ``python examples/speaker_array.py
[--epochs N] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from phyll import CallableSystem
from phyll.cli import main as phyll

CHANNELS = 20


class SpeakerArray:
    """Microphone powers ``|H a|²`` of speaker amplitudes ``a`` in [0, 1], plus noise.

    ``H``: free-field propagation between a line of speakers and a line of microphones 0.5 m
    apart (1/r attenuation, phase k·r at 2 kHz): the room, the same in every run.
    """

    def __init__(self, seed: int = 0, noise_std: float = 0.01) -> None:
        x = np.linspace(0.0, 1.0, CHANNELS)  # positions along each line (m)
        r = np.hypot(x[:, None] - x[None, :], 0.5)  # microphone × speaker distances (m)
        k = 2 * np.pi * 2000.0 / 343.0  # wavenumber at 2 kHz (rad/m)
        self.response = np.exp(1j * k * r) / r
        self.rng = np.random.default_rng(seed)  # the microphones' noise
        self.noise_std = noise_std

    def __call__(self, drive: np.ndarray) -> np.ndarray:
        power = np.abs(drive @ self.response.T) ** 2 / CHANNELS
        return power + self.noise_std * self.rng.normal(size=power.shape)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}  # plain data: checkpointed, never pickled

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def make(seed: int = 0, noise_std: float = 0.01) -> CallableSystem:
    """The device (``--system-param noise_std=0.02`` reaches it): 2 ms and 3 W per query."""
    return CallableSystem(
        SpeakerArray(seed, noise_std),
        CHANNELS,
        CHANNELS,
        name="speaker-array",
        measurement_time_s=2e-3,
        power_w=3.0,
    )


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", default="30", help="training epochs (default: 30)")
    parser.add_argument("--workdir", type=Path, default=Path("speaker-array-example"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    out = str(args.workdir / "run")
    for argv in (
        ["train", "--dataset", "vowels7", "--system", "speaker_array:make",
         "--epochs", args.epochs, "--out", out, "--overwrite", "--quiet"],
        ["evaluate", out, "--dataset", "vowels7", "--trust-code"],
    ):  # fmt: skip
        print("$ phyll", " ".join(argv), flush=True)
        if phyll(argv) != 0:
            raise SystemExit(2)


if __name__ == "__main__":
    run()
