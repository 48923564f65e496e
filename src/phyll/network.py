"""Deep physical neural network: a stack of physical blocks with trainable digital weights.

Each :class:`PhysicalBlock` does (docs/architecture.md, "One training step")::

    h_in ──drive map──▶ physical system ──measurement z──▶ conditioning ──┐
      └──────────────────────────(skip connection, optional)──────────────┴─▶ W ─▶ |·| ─▶ y

The physical system is only ever *called*; the trainable weights ``W`` sit after the
measurement, so a block's local loss on ``y`` has a gradient w.r.t. ``W`` that needs the
measured ``z`` only: no model or Jacobian of the physics. ``y`` (detached) drives the next block.

Options of the paper's optical experiment (Momeni et al., Science 2023): ``pool`` averages
neighbouring camera pixels (``(3, 2)``: 3 × 3 windows, stride 2) before the digital weights, for
systems whose measurements are an image (:attr:`~phyll.systems.base.PhysicalSystem.output_grid`);
the pooling is digital work, counted as such.

The network also owns the supervised label embedding used by the local rules' positive and
negative samples: a one-hot appended to the input as extra drive channels (``append``), or
written into the image itself (``overlay``, as the paper's optics does: class ``c`` lights the
``c``-th segment of the top two pixel rows, which in MNIST are blank; see
:func:`overlay_labels`). A :class:`Model` is what a run trains, checkpoints and saves: the
network plus an optional digital :class:`LinearHead` (the classifier of in-silico backprop and
PAT, or the linear readout of a local rule).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from phyll.errors import ConfigError
from phyll.systems.base import NonFiniteMeasurementError, PhysicalSystem

Conditioning = Literal["standardize", "log-standardize", "unit-norm", "none"]
Activation = Literal["abs", "relu"]


class BlockMeasurementError(NonFiniteMeasurementError):
    """A block's physical system returned NaN/inf; names the block."""

    def __init__(self, block_index: int, cause: Exception) -> None:
        super().__init__(f"block {block_index}: {cause}")
        self.block_index = block_index


class SurrogateGradient(torch.autograd.Function):
    """Forward: the physical system (no autograd). Backward: a surrogate's VJP at the drive.

    Physics-aware training (Wright et al. 2022): the measurement is real, its Jacobian is
    borrowed from a differentiable model of the physics evaluated at the same drive.
    """

    @staticmethod
    def forward(
        ctx: Any, drive: Tensor, system: PhysicalSystem, surrogate: Callable[[Tensor], Tensor]
    ) -> Tensor:
        ctx.save_for_backward(drive)
        ctx.surrogate = surrogate
        with torch.no_grad():
            return system(drive.detach())

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (drive,) = ctx.saved_tensors
        with torch.enable_grad():
            d = drive.detach().requires_grad_(True)
            (grad_drive,) = torch.autograd.grad(ctx.surrogate(d), d, grad_output)
        return grad_drive, None, None


class MeasurementConditioner(nn.Module):
    """Makes raw measurements digestible: optional log compression, then scaling.

    ``standardize`` subtracts a running per-channel mean and divides by a running std (set from
    the first training batch, then updated with momentum, frozen in eval mode), which removes
    detector offsets and per-channel gain, as experimental pipelines do. ``log-standardize``
    first applies ``log(z + eps)`` for powers spanning decades. ``unit-norm`` scales each
    sample to unit L2 norm (stateless; immune to global gain drift).
    """

    def __init__(
        self,
        n_channels: int,
        mode: Conditioning = "standardize",
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if mode not in ("standardize", "log-standardize", "unit-norm", "none"):
            raise ConfigError(f"unknown conditioning {mode!r}")
        self.mode = mode
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_mean", torch.zeros(n_channels))
        self.register_buffer("running_var", torch.ones(n_channels))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, z: Tensor) -> Tensor:
        if self.mode == "none":
            return z
        if self.mode == "unit-norm":
            return F.normalize(z, dim=1)
        if self.mode == "log-standardize":
            z = torch.log(z.clamp_min(0.0) + 1e-4)
        if self.training:
            with torch.no_grad():  # first batch: its statistics; then a running average
                mean, var = z.mean(0), z.var(0, unbiased=False)
                first = ~self.initialized  # decided on the device: no host round trip
                running_mean = self.running_mean.lerp(mean, self.momentum)
                running_var = self.running_var.lerp(var, self.momentum)
                self.running_mean.copy_(torch.where(first, mean, running_mean))
                self.running_var.copy_(torch.where(first, var, running_var))
                self.initialized.fill_(True)
        return (z - self.running_mean) / torch.sqrt(self.running_var + self.eps)


class PhysicalBlock(nn.Module):
    """One block: drive map → physical system → conditioning → digital weights → activation.

    Args:
        system: the block's physical system (black box).
        in_features: width of the block's input representation (must fit the system's inputs).
        out_features: width of the block's output representation ``y``.
        skip: concatenate the (normalised) block input to the measurement before ``W``.
        use_physics: False removes the measurement (the honesty ablation: digital path only).
        normalise_input: scale each input sample to the drive range by its maximum (for hidden
            blocks, whose inputs are unbounded); the first block's data are already in [0, 1].
        pool: ``(window, stride)``: average the measured image over ``window × window`` pixels
            every ``stride`` pixels before conditioning (needs ``system.output_grid``); None:
            every measured channel goes to the digital weights.
    """

    def __init__(
        self,
        system: PhysicalSystem,
        in_features: int,
        out_features: int,
        *,
        skip: bool = True,
        use_physics: bool = True,
        normalise_input: bool = True,
        conditioning: Conditioning = "standardize",
        activation: Activation = "abs",
        pool: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if in_features > system.n_inputs:
            raise ConfigError(
                f"block input has {in_features} features but the system has only "
                f"{system.n_inputs} drive channels"
            )
        if not (skip or use_physics):
            raise ConfigError("a block without physics needs the skip connection")
        if activation not in ("abs", "relu"):
            raise ConfigError(f"unknown activation {activation!r}")
        self.system = system
        self.in_features = in_features
        self.out_features = out_features
        self.skip = skip
        self.use_physics = use_physics
        self.normalise_input = normalise_input
        self.activation = activation
        self.index = 0  # set by the network
        self.pool = pool
        self.pooled_grid = pooled_grid(system, pool) if pool is not None else None
        n_measured = system.n_outputs if pool is None else math.prod(self.pooled_grid)
        self.conditioner = MeasurementConditioner(n_measured, conditioning)
        n_digital_in = (n_measured if use_physics else 0) + (in_features if skip else 0)
        self.linear = nn.Linear(n_digital_in, out_features)

    def drive(self, h: Tensor) -> Tensor:
        """Map a representation into [0, 1] (then the system's range), zero-padding channels."""
        if h.shape[1] != self.in_features:
            raise ConfigError(
                f"block {self.index} expects {self.in_features} features, got {h.shape[1]}"
            )
        if self.normalise_input:
            h = h / h.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
        h = h.clamp(0.0, 1.0)
        if h.shape[1] < self.system.n_inputs:  # unused channels stay switched off
            h = F.pad(h, (0, self.system.n_inputs - h.shape[1]))
        low, high = self.system.drive_range
        return low + (high - low) * h

    def measure(self, h: Tensor, surrogate: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Drive the physical system with ``h``: the only way anything calls the physics.

        With ``surrogate`` (a differentiable model of the physics, e.g. PAT's twin) the result
        is still the real measurement, but its gradient with respect to the drive is the
        surrogate's vector-Jacobian product at that drive (:class:`SurrogateGradient`).
        """
        drive = self.drive(h)
        try:
            if surrogate is None:
                return self.system(drive)
            return SurrogateGradient.apply(drive, self.system, surrogate)
        except NonFiniteMeasurementError as exc:
            raise BlockMeasurementError(self.index, exc) from exc

    def digital(self, z: Tensor | None, h: Tensor) -> Tensor:
        """Trainable part: ``y = act(W [cond(z); h_norm])`` from a measurement ``z``."""
        return self.activate(self.linear(self.digital_input(z, h)))

    def digital_input(self, z: Tensor | None, h: Tensor) -> Tensor:
        """What the digital weights read: ``[cond(z); h_norm]`` (no trainable weight in it)."""
        parts = []
        if self.use_physics:
            if z is None:
                raise ConfigError("this block uses physics: pass its measurement")
            parts.append(self.conditioner(self.pooled(z)))
        if self.skip:
            parts.append(self.drive(h)[:, : self.in_features])
        return torch.cat(parts, dim=1)

    def activate(self, pre: Tensor) -> Tensor:
        """The block's activation of the pre-activations ``W u``."""
        return pre.abs() if self.activation == "abs" else F.relu(pre)

    def pooled(self, z: Tensor) -> Tensor:
        """The measured image averaged over the pooling windows (``z`` itself without pooling).

        Unfolding is a view; the mean is the only arithmetic, so the FLOP counter sees it."""
        if self.pool is None:
            return z
        window, stride = self.pool
        image = z.reshape(z.shape[0], *self.system.output_grid)
        patches = image.unfold(1, window, stride).unfold(2, window, stride)
        return patches.mean(dim=(-2, -1)).flatten(1)

    def forward(self, h: Tensor) -> Tensor:
        """Full block: physical measurement (never differentiated here) then digital part."""
        z = None
        if self.use_physics:
            with torch.no_grad():
                z = self.measure(h)
        return self.digital(z, h)


def pooled_grid(system: PhysicalSystem, pool: tuple[int, int]) -> tuple[int, int]:
    """``(rows, cols)`` of ``system``'s measured image after ``pool = (window, stride)``."""
    window, stride = pool
    if window < 1 or stride < 1:
        raise ConfigError(f"pooling window and stride must be >= 1, got {pool}")
    grid = system.output_grid
    if grid is None:
        raise ConfigError(
            f"pooling needs measurements laid out as an image, but {type(system).__name__} "
            "has no output_grid (the optical camera and random-features have one; the optical "
            "one only when every pixel is read)"
        )
    if window > min(grid):
        raise ConfigError(f"pooling window {window} is larger than the measured image {grid}")
    rows, cols = ((side - window) // stride + 1 for side in grid)
    return rows, cols


def overlay_labels(x: Tensor, code: Tensor, image_shape: tuple[int, int], scale: float) -> Tensor:
    """``x`` (flattened images) with the label ``code`` [B, C] written into the top two rows.

    The rows are cut into ``C`` segments of ``width // C`` pixels; segment ``c`` is set to
    ``scale · code[:, c]`` (a hot label lights one segment; the neutral code lights all at
    ``1/C``). The pixels under the segments are replaced: the image there is lost.
    """
    rows, cols = image_shape
    n_classes = code.shape[1]
    segment = cols // n_classes
    band = min(2, rows)
    images = x.reshape(x.shape[0], rows, cols).clone()
    values = (scale * code).repeat_interleave(segment, dim=1)  # [B, C · segment]
    images[:, :band, : n_classes * segment] = values.unsqueeze(1).to(x.dtype)
    return images.flatten(1)


class PhysicalNetwork(nn.Module):
    """A stack of :class:`PhysicalBlock` plus the supervised label embedding.

    Args:
        blocks: the blocks, first to last.
        n_features: input features of the data (in [0, 1]).
        n_classes: number of labels embedded in the input (0 for unsupervised use).
        label_scale: drive level of the hot label channel.
        label_overlay: ``(rows, cols)`` of the data's images to write the labels into them
            (:func:`overlay_labels`); None appends them as ``n_classes`` extra channels.
    """

    def __init__(
        self,
        blocks: list[PhysicalBlock],
        n_features: int,
        n_classes: int,
        label_scale: float = 1.0,
        label_overlay: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if not blocks:
            raise ConfigError("a network needs at least one block")
        if label_overlay is not None:
            check_overlay(label_overlay, n_features, n_classes)
        n_label_channels = 0 if label_overlay is not None else n_classes
        if blocks[0].in_features != n_features + n_label_channels:
            raise ConfigError(
                f"first block expects {blocks[0].in_features} inputs, data + labels give "
                f"{n_features + n_label_channels}"
            )
        for i, (a, b) in enumerate(itertools.pairwise(blocks)):
            if a.out_features != b.in_features:
                raise ConfigError(
                    f"block {i} outputs {a.out_features}, block {i + 1} expects {b.in_features}"
                )
        self.blocks = nn.ModuleList(blocks)
        for i, block in enumerate(blocks):
            block.index = i
        self.n_features = n_features
        self.n_classes = n_classes
        self.label_scale = label_scale
        self.label_overlay = tuple(label_overlay) if label_overlay is not None else None

    @property
    def systems(self) -> list[PhysicalSystem]:
        return [block.system for block in self.blocks]

    def embed(self, x: Tensor, labels: Tensor | None) -> Tensor:
        """``x`` with the label one-hot (or a neutral 1/C code when ``labels`` is None),
        appended or overlaid."""
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ConfigError(
                f"expected data of shape [batch, {self.n_features}], got {list(x.shape)}"
            )
        if self.n_classes == 0:
            return x
        if labels is None:
            code = torch.full((x.shape[0], self.n_classes), 1.0 / self.n_classes, device=x.device)
        else:
            code = F.one_hot(labels.long(), self.n_classes).to(x.dtype)
        if self.label_overlay is not None:
            return overlay_labels(x, code, self.label_overlay, self.label_scale)
        return torch.cat([x, self.label_scale * code], dim=1)

    def forward(self, h: Tensor) -> list[Tensor]:
        """Outputs of every block for an already embedded input (each block input detached)."""
        outputs = []
        for block in self.blocks:
            h = block(h.detach())
            outputs.append(h)
        return outputs


def build_network(
    systems: list[PhysicalSystem],
    n_features: int,
    n_classes: int,
    width: int,
    *,
    skip: bool = True,
    use_physics: bool = True,
    conditioning: Conditioning = "standardize",
    activation: Activation = "abs",
    label_scale: float = 1.0,
    label_overlay: tuple[int, int] | None = None,
    pool: tuple[int, int] | None = None,
) -> PhysicalNetwork:
    """Stack one block per system; hidden representations have ``width`` features."""
    blocks = []
    in_features = n_features + (0 if label_overlay is not None else n_classes)
    for i, system in enumerate(systems):
        blocks.append(
            PhysicalBlock(
                system,
                in_features,
                width,
                skip=skip,
                use_physics=use_physics,
                normalise_input=i > 0,
                conditioning=conditioning,
                activation=activation,
                pool=pool,
            )
        )
        in_features = width
    return PhysicalNetwork(blocks, n_features, n_classes, label_scale, label_overlay)


def check_overlay(image_shape: tuple[int, int], n_features: int, n_classes: int) -> None:
    """Refuse a label overlay that does not fit the data: a clear one-line error."""
    rows, cols = image_shape
    if rows * cols != n_features:
        raise ConfigError(
            f"label overlay on {rows}×{cols} images, but the data have {n_features} features"
        )
    if n_classes > cols:
        raise ConfigError(
            f"label overlay needs an image at least as wide as the {n_classes} classes "
            f"(images are {cols} pixels wide); use the appended labels"
        )


class LinearHead(nn.Module):
    """Layer norm (no affine) + linear map: block outputs → class scores.

    The classifier of end-to-end rules (gradients flow into the blocks) and the readout of
    local rules (fed detached block outputs) are the same layer; only what feeds it differs.
    """

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(n_features, elementwise_affine=False)
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(self.norm(features))


class Model(nn.Module):
    """Everything a run trains and saves: the physical network and an optional digital head.

    The experiment builds it (the learning rule declares what it needs, see
    :class:`phyll.learning.base.ModelSpec`), owns it and checkpoints its ``state_dict``; rules
    update its weights and never add modules to it.
    """

    def __init__(self, network: PhysicalNetwork, head: LinearHead | None = None) -> None:
        super().__init__()
        self.network = network
        self.head = head

    @property
    def systems(self) -> list[PhysicalSystem]:
        return self.network.systems

    @property
    def blocks(self) -> nn.ModuleList:
        return self.network.blocks

    def forward(self, x: Tensor, labels: Tensor | None = None) -> list[Tensor]:
        """Every block's output for data ``x`` with ``labels`` embedded (None: neutral code)."""
        return self.network(self.network.embed(x, labels))
