r"""Unsupervised PhyLL: label-free local training of the blocks, then a linear readout.

The blocks are trained exactly as in supervised PhyLL (:mod:`phyll.learning.phyll`: cosine
goodness against a fixed random reference per block, loss softplus(−θ (G⁺ − G⁻)), Adam on the
block's own digital weights, ``2B`` physical queries per block and step), but the positive and
negative data are made without labels and the network embeds no label (``embeds_labels =
False``: the first block sees the data alone).

Positive and negative data (for a batch ``x`` of ``B`` samples, features in [0, 1]):

* **positive** = the sample under a small corruption: ``clip(x + ε, 0, 1)`` with
  ``ε ~ N(0, noise²)`` per feature (``noise`` = 0.05 by default; 0 gives the real sample, as in
  Hinton's forward-forward paper);
* **negative** = a *hybrid* of two different samples, ``m ⊙ x + (1 − m) ⊙ x'`` where ``x'`` is
  another sample of the batch (a random derangement: never the sample itself) and ``m`` a
  random binary mask with large coherent regions, made as in Hinton (2022, "The forward-forward
  algorithm", §3.2) and the PhyLL paper's unsupervised variant: a random bit image blurred
  ``mask_blur`` times (6 by default) with the filter [1/4, 1/2, 1/4] along each axis, then
  thresholded at 0.5. A square number of features is treated as a square image (2-D blur);
  other data are blurred along the feature axis. Hybrids keep the local statistics of real
  data but not their long-range correlations, which is what the blocks learn to tell apart.

**Readout.** A linear classifier (:class:`~phyll.learning.readout.LinearReadout`, softmax
regression on the layer-normalised concatenation of all block outputs) is trained *jointly*,
one step per training step, on the detached block outputs of the positives that the block
step has already measured (no extra physical query); labels are used by the readout only and
never reach the blocks. The blocks' representation therefore never sees a label, and the
readout measures it. The readout is registered on the network (``network.readout``), so the
best-epoch weights, checkpoints and ``model.pt`` keep it together with the blocks it reads. Prediction: one pass of the clean sample through the network
(1 physical query per sample and block), readout argmax.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import LearningRule
from phyll.learning.phyll import random_references, train_blocks_locally
from phyll.learning.readout import LinearReadout
from phyll.network import PhysicalNetwork


def smooth_masks(
    n: int, n_features: int, blur: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """``[n, n_features]`` binary masks with coherent regions (blurred random bits > 0.5)."""
    bits = torch.randint(0, 2, (n, n_features), generator=generator).float().to(device)
    side = math.isqrt(n_features)
    kernel = torch.tensor([0.25, 0.5, 0.25], device=device)
    if side * side == n_features:  # a square image: blur rows and columns
        img = bits.view(n, 1, side, side)
        for _ in range(blur):
            img = F.conv2d(F.pad(img, (1, 1, 0, 0), mode="replicate"), kernel.view(1, 1, 1, 3))
            img = F.conv2d(F.pad(img, (0, 0, 1, 1), mode="replicate"), kernel.view(1, 1, 3, 1))
        smooth = img.view(n, n_features)
    else:
        seq = bits.view(n, 1, n_features)
        for _ in range(blur):
            seq = F.conv1d(F.pad(seq, (1, 1), mode="replicate"), kernel.view(1, 1, 3))
        smooth = seq.view(n, n_features)
    return (smooth > 0.5).to(bits.dtype)


class PhyLLUnsupervised(LearningRule):
    """Unsupervised PhyLL with a jointly trained linear readout (see module docstring).

    Args:
        network: a network that embeds no label (``n_classes == 0``).
        n_classes: classes of the task, for the readout only.
        seed: seeds the references, corruptions, partners and masks.
        theta: sharpness θ of the contrastive loss.
        lr: Adam learning rate of the blocks' digital weights.
        readout_lr: Adam learning rate of the readout (default: ``lr``).
        noise: std of the Gaussian corruption of the positives (features in [0, 1]).
        mask_blur: blur passes making the hybrid masks (0: independent random bits).
    """

    name = "phyll-unsup"
    model_free = True
    embeds_labels = False
    prediction = "readout"

    def __init__(
        self,
        network: PhysicalNetwork,
        n_classes: int,
        seed: int = 0,
        theta: float = 4.0,
        lr: float = 1e-2,
        readout_lr: float | None = None,
        noise: float = 0.05,
        mask_blur: int = 6,
    ) -> None:
        super().__init__(network, seed)
        if network.n_classes != 0:
            raise ValueError("unsupervised PhyLL needs a network that embeds no labels")
        if n_classes < 2:
            raise ValueError(f"the readout needs at least 2 classes, got {n_classes}")
        if noise < 0 or mask_blur < 0:
            raise ValueError("noise and mask_blur must be non-negative")
        self.theta = theta
        self.lr = lr
        self.readout_lr = lr if readout_lr is None else readout_lr
        self.noise = noise
        self.mask_blur = mask_blur
        self.references = random_references(network, seed)
        self.optimizers = [torch.optim.Adam(b.parameters(), lr=lr) for b in network.blocks]
        device = network.blocks[0].linear.weight.device
        self.readout = LinearReadout(
            sum(b.out_features for b in network.blocks), n_classes, self.readout_lr
        ).to(device)
        # registered on the network so that checkpoints, the best-epoch weights and model.pt
        # hold the readout together with the blocks it reads
        network.add_module("readout", self.readout)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "theta": self.theta,
            "lr": self.lr,
            "readout_lr": self.readout_lr,
            "noise": self.noise,
            "mask_blur": self.mask_blur,
            "prediction": self.prediction,
            "goodness": "cosine to a fixed random reference per block",
            "positive": "sample + Gaussian noise (std `noise`), clipped to [0, 1]",
            "negative": "hybrid m*x + (1-m)*x' of two different samples, blurred random mask",
        }

    def positives_and_negatives(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Label-free contrastive data for a batch (see module docstring)."""
        n, d = x.shape
        noise = torch.randn(x.shape, generator=self.generator).to(x.device)
        positive = (x + self.noise * noise).clamp(0.0, 1.0)
        if n < 2:
            raise ValueError("unsupervised PhyLL needs batches of at least 2 samples")
        shift = int(torch.randint(1, n, (1,), generator=self.generator))
        partner = torch.roll(x, shift, dims=0)  # a cyclic shift: never the sample itself
        mask = smooth_masks(n, d, self.mask_blur, self.generator, x.device)
        return positive, mask * x + (1 - mask) * partner

    def train_step(self, x: Tensor, y: Tensor) -> float:
        net = self.network
        positive, negative = self.positives_and_negatives(net.embed(x, None))
        loss, features = train_blocks_locally(
            net, positive, negative, self.references, self.optimizers, self.theta
        )
        self.readout.train_step(torch.cat(features, dim=1), y)
        return loss

    def features(self, x: Tensor) -> Tensor:
        """Detached outputs of every block for clean samples (the readout's input)."""
        with torch.no_grad():
            return torch.cat(self.network(self.network.embed(x, None)), dim=1)

    def predict(self, x: Tensor) -> Tensor:
        self.network.eval()
        return self.readout.predict(self.features(x))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "readout": self.readout.state_dict(),
            "readout_optimizer": self.readout.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.readout.load_state_dict(state["readout"])
        self.readout.optimizer.load_state_dict(state["readout_optimizer"])
