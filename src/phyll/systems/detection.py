"""The detector chain shared by the simulated wave systems: gain staging, noise, ADC.

A measured power passes through an amplifier whose gain is set once so that 4× the channel's
mean power (under uniform random drive) is the converter's full scale; detector noise of a
given standard deviation (in units of full scale) is added; a converter of ``bits`` bits clips
to [0, 1] full scale and quantizes. The quantizer passes gradients straight through so that a
simulator's in-silico model stays differentiable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: full scale = this many times a channel's mean calibration power (headroom for bright samples)
HEADROOM = 4.0


def quantize_straight_through(x: Tensor, bits: int, *, inplace: bool = False) -> Tensor:
    """Round to ``2**bits`` levels in [0, 1]; the gradient passes straight through.

    Without an autograd path (``x`` needs no gradient or grad mode is off) the rounded value is
    returned directly, computed in ``x``'s own buffer if ``inplace``.
    """
    levels = 2**bits - 1
    if torch.is_grad_enabled() and x.requires_grad:
        q = torch.round(x.clamp(0.0, 1.0) * levels) / levels
        return x + (q - x).detach()
    q = x if inplace else x.clone()
    return q.clamp_(0.0, 1.0).mul_(levels).round_().div_(levels)


def calibrate_full_scale(
    power: Callable[[Tensor], Tensor],
    n_inputs: int,
    n_drives: int,
    generator: torch.Generator,
    device: torch.device,
    floor: float,
) -> Tensor:
    """Per-channel full scale from ``n_drives`` uniform random calibration drives (not queries)."""
    drives = torch.rand(n_drives, n_inputs, generator=generator).to(device)
    with torch.no_grad():
        return HEADROOM * power(drives).mean(0).clamp_min(floor)


def detect(
    signal: Tensor, noise_std: float, adc_bits: int | None, generator: torch.Generator
) -> Tensor:
    """Add detector noise (std in full-scale units) to a full-scale signal, then digitize it.

    Without an autograd path the work is done in ``signal``'s buffer (pass a temporary).
    """
    inplace = not (torch.is_grad_enabled() and signal.requires_grad)
    if noise_std > 0:
        noise = torch.randn(
            signal.shape, generator=generator, device=signal.device, dtype=signal.dtype
        )
        signal = signal.add_(noise, alpha=noise_std) if inplace else signal + noise_std * noise
    if adc_bits is not None:
        return quantize_straight_through(signal, adc_bits, inplace=inplace)
    return signal
