"""A device written as a user writes one (test-only): NumPy and phyll's public API, nothing else.

An emulator of a 20-speaker, 20-microphone acoustic cavity: a fixed complex response ``H``
(the device, whatever the seed), square-law detection and detector noise from the device's own
NumPy generator, whose state the emulator saves and restores (``state_dict``), so a resumed run
draws the same noise. ``make`` takes no sizes: the device is fixed at 20 → 20 and phyll sizes
the network around it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from phyll import CallableSystem

CHANNELS = 20


class CavityEmulator:
    """``|H a|² + noise`` for drives ``a`` of shape ``[B, 20]``."""

    def __init__(self, seed: int = 0, noise_std: float = 0.01) -> None:
        medium = np.random.default_rng(20231124)  # the cavity: the same in every block and run
        shape = (CHANNELS, CHANNELS)
        self.response = (medium.normal(size=shape) + 1j * medium.normal(size=shape)) / np.sqrt(
            CHANNELS
        )
        self.rng = np.random.default_rng(seed)
        self.noise_std = noise_std

    def __call__(self, drive: np.ndarray) -> np.ndarray:
        power = np.abs(drive @ self.response.T) ** 2
        return power + self.noise_std * self.rng.normal(size=power.shape)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def make(seed: int = 0) -> CallableSystem:
    """The device: 20 → 20 channels, 1 ms and 0.5 W per query."""
    return CallableSystem(
        CavityEmulator(seed),
        CHANNELS,
        CHANNELS,
        name="cavity-emulator",
        measurement_time_s=1e-3,
        power_w=0.5,
    )
