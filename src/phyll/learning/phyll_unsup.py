r"""Unsupervised PhyLL: label-free local training of the blocks, then a linear readout.

The blocks are trained as in supervised PhyLL (:mod:`phyll.learning.phyll`, whose block step,
cosine goodness and loss softplus(−θ (G⁺ − G⁻)) are reused: Adam on each block's own digital
weights, ``2B`` physical queries per block and step, no gradient through the physics or across
blocks), but the positive and negative data are made without labels, and the network embeds
no label (``embeds_labels = False``: the first block sees the data alone).

Two label-free constructions (``pairs``), for a batch ``x`` of ``B`` samples in [0, 1]; the
*corruption* of a sample is ``clip(x + ε, 0, 1)``, ``ε ~ N(0, noise²)`` per feature:

* ``"instance"`` (default): each sample is driven twice, under two independent corruptions
  (``2B`` queries). Goodness is the pairwise cosine similarity of block outputs: G⁺ between
  the two views of the same sample, G⁻ between a view and the other view of a *different*
  sample of the batch (a random cyclic shift, never the sample itself), i.e. PhyLL's loss with
  pairwise similarity instead of a reference vector, contrasting instances.
* ``"hybrid"`` (Hinton 2022, "The forward-forward algorithm", §3.2, as the PhyLL paper's
  unsupervised variant describes): positive = the corrupted sample; negative = a hybrid
  ``m ⊙ x + (1 − m) ⊙ x'`` of the sample and a different one, with a random bit mask blurred
  ``mask_blur`` times by [1/4, 1/2, 1/4] (rows and columns when the number of features is a
  square, i.e. a square image; else along the features) and thresholded at 0.5. Goodness is
  the cosine to a fixed random reference per block, exactly as supervised PhyLL.

Why ``"instance"`` is the default: with a *fixed reference* goodness and hybrid negatives, the
optimum maps every real sample onto the reference direction, whatever its content; the loss
falls to ≈0.02 within an epoch and the representation collapses (measured on ``mnist5k:14x14``
with acoustic cavities: readout test accuracy 12.5 %, chance 10 %). Pairwise goodness with
other real samples as negatives cannot be satisfied by a constant map (measured: 82 % after
3 epochs). ``"hybrid"`` is kept, documented, to reproduce the paper's construction.

**Readout.** A linear classifier (:class:`~phyll.learning.readout.LinearReadout`, softmax
regression on the layer-normalised concatenation of all block outputs) is trained *jointly*,
one step per training step, on the detached block outputs of the first view (already measured
by the block step: no extra physical query); labels are used by the readout only and never
reach the blocks. The readout is registered on the network (``network.readout``), so the
best-epoch weights, checkpoints and ``model.pt`` keep it together with the blocks it reads.
Prediction: one pass of the clean sample through the network (1 physical query per sample and
block), readout argmax.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import LearningRule
from phyll.learning.local import train_blocks_locally
from phyll.learning.phyll import contrastive_loss, cosine_goodness, random_references
from phyll.learning.readout import LinearReadout
from phyll.network import PhysicalNetwork

Pairs = Literal["instance", "hybrid"]


def blur_operator(n_features: int, passes: int) -> Tensor:
    """``[n, n]`` matrix applying ``passes`` times the filter [1/4, 1/2, 1/4] (replicate edges).

    A square number of features is blurred as a square image (rows and columns), other data
    along the feature axis. Masks are then ``(bits @ operator.T) > 0.5``.
    """
    side = math.isqrt(n_features)
    n = side if side * side == n_features else n_features
    one_d = torch.zeros(n, n)
    for i in range(n):
        for j, w in ((i - 1, 0.25), (i, 0.5), (i + 1, 0.25)):
            one_d[i, min(max(j, 0), n - 1)] += w
    one_d = torch.linalg.matrix_power(one_d, passes)
    return torch.kron(one_d, one_d) if n == side else one_d


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
        pairs: Pairs = "instance",
    ) -> None:
        super().__init__(network, seed)
        if network.n_classes != 0:
            raise ValueError("unsupervised PhyLL needs a network that embeds no labels")
        if n_classes < 2:
            raise ValueError(f"the readout needs at least 2 classes, got {n_classes}")
        if noise < 0 or mask_blur < 0:
            raise ValueError("noise and mask_blur must be non-negative")
        if pairs not in ("instance", "hybrid"):
            raise ValueError(f"pairs must be 'instance' or 'hybrid', got {pairs!r}")
        self.pairs = pairs
        self.theta = theta
        self.lr = lr
        self.readout_lr = lr if readout_lr is None else readout_lr
        self.noise = noise
        self.mask_blur = mask_blur
        self.references = random_references(network, seed)
        self.optimizers = [torch.optim.Adam(b.parameters(), lr=lr) for b in network.blocks]
        device = network.blocks[0].linear.weight.device
        self.blur = blur_operator(network.n_features, mask_blur).to(device)
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
            "n_classes": self.readout.linear.out_features,
            "noise": self.noise,
            "mask_blur": self.mask_blur,
            "pairs": self.pairs,
            "prediction": self.prediction,
        }

    def corrupt(self, x: Tensor) -> Tensor:
        """The sample under a small corruption: Gaussian noise of std ``noise``, clipped."""
        noise = torch.randn(x.shape, generator=self.generator).to(x.device)
        return (x + self.noise * noise).clamp(0.0, 1.0)

    def hybrid(self, x: Tensor, partner: Tensor) -> Tensor:
        """``m ⊙ x + (1 − m) ⊙ partner`` with blurred random binary masks ``m``."""
        bits = torch.randint(0, 2, x.shape, generator=self.generator).to(x)
        mask = (bits @ self.blur.T > 0.5).to(x.dtype)
        return mask * x + (1 - mask) * partner

    def train_step(self, x: Tensor, y: Tensor) -> float:
        net = self.network
        x = net.embed(x, None)
        batch = x.shape[0]
        if batch < 2:
            raise ValueError("unsupervised PhyLL needs batches of at least 2 samples")
        shift = int(torch.randint(1, batch, (1,), generator=self.generator))  # never itself
        if self.pairs == "hybrid":
            inputs = torch.cat([self.corrupt(x), self.hybrid(x, torch.roll(x, shift, 0))])

            def block_loss(out: Tensor, index: int) -> Tensor:
                ref = self.references[index]
                g_pos = cosine_goodness(out[:batch], ref)
                return contrastive_loss(g_pos, cosine_goodness(out[batch:], ref), self.theta)

        else:
            inputs = torch.cat([self.corrupt(x), self.corrupt(x)])

            def block_loss(out: Tensor, index: int) -> Tensor:
                view, other = out[:batch], out[batch:]
                g_pos = F.cosine_similarity(view, other, dim=1, eps=1e-8)
                g_neg = F.cosine_similarity(view, torch.roll(other, shift, 0), dim=1, eps=1e-8)
                return contrastive_loss(g_pos, g_neg, self.theta)

        loss, outputs = train_blocks_locally(net, inputs, block_loss, self.optimizers)
        self.readout.train_step(torch.cat([o[:batch] for o in outputs], dim=1), y)
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
