r"""Unsupervised PhyLL: label-free local training of the blocks, then a linear readout.

The blocks are trained as in supervised PhyLL (:mod:`phyll.learning.phyll`, whose block step,
cosine goodness and loss softplus(−θ (G⁺ − G⁻)) are reused: Adam on each block's own digital
weights, ``2B`` physical queries per block and step, no gradient through the physics or across
blocks), but the positive and negative data are made without labels, and the network embeds
no label (its :meth:`~PhyLLUnsupervised.model_spec` declares no label channels: the first
block sees the data alone).

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
reach the blocks. The readout is the model's head (declared by the rule, built by the
experiment), so the best-epoch weights, checkpoints and ``model.pt`` keep it together with the
blocks it reads.
Prediction: one pass of the clean sample through the network (1 physical query per sample and
block), readout argmax.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import (
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    optimizer_factory,
)
from phyll.learning.blockwise import BlockObjective, BlockStep, BlockwiseRule
from phyll.learning.phyll import contrastive_loss, cosine_goodness, random_references
from phyll.learning.readout import train_readout
from phyll.network import Model
from phyll.params import check, finite_positive, param

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


@dataclass(frozen=True)
class UnsupervisedParams(RuleParams):
    """Unsupervised PhyLL's parameters."""

    theta: float = param(4.0, "sharpness θ of the contrastive loss")
    readout_lr: float | None = param(None, "learning rate of the readout (None: lr)")
    noise: float = param(0.05, "std of the Gaussian corruption of the positives", "features")
    mask_blur: int = param(6, "blur passes making the hybrid masks (0: independent bits)")
    pairs: Pairs = param("instance", "label-free pairs: instance (default) or hybrid (paper)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.noise >= 0 and self.mask_blur >= 0, "noise and mask_blur must be >= 0")
        check(
            self.readout_lr is None or finite_positive(self.readout_lr),
            f"readout_lr must be a finite number > 0, got {self.readout_lr}",
        )


@dataclass(frozen=True)
class UnsupervisedObjective:
    """A block's loss on its stacked outputs ``[first views; second views]`` (see
    :meth:`PhyLLUnsupervised.block_loss`); the step's ``partners`` come in the context."""

    pairs: Pairs
    reference: Tensor
    theta: float

    def __call__(self, out: Tensor, context: dict[str, Tensor]) -> Tensor:
        batch = out.shape[0] // 2
        first, second = out[:batch], out[batch:]
        if self.pairs == "hybrid":
            g_pos = cosine_goodness(first, self.reference)
            g_neg = cosine_goodness(second, self.reference)
        else:
            partners = context["partners"]
            g_pos = F.cosine_similarity(first, second, dim=1, eps=1e-8)
            g_neg = F.cosine_similarity(first, second[partners], dim=1, eps=1e-8)
        return contrastive_loss(g_pos, g_neg, self.theta)


class PhyLLUnsupervised(BlockwiseRule):
    """Unsupervised PhyLL with a jointly trained linear readout (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the references,
    corruptions, partners and masks. Parameters: :class:`UnsupervisedParams`.
    """

    name = "phyll-unsup"
    model_free = True
    needs_outputs = True
    Params = UnsupervisedParams
    params: UnsupervisedParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        return ModelSpec(label_channels=False, head="readout", head_input="all")

    def __init__(
        self,
        model: Model,
        params: UnsupervisedParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        if self.network.n_classes != 0 or model.head is None:
            raise ValueError(
                "unsupervised PhyLL needs a network that embeds no labels and a readout head"
            )
        self.head = model.head
        p = self.params
        self.references = random_references(self.network, seed)
        self.optimizers = [self.make_optimizer(b.parameters()) for b in self.network.blocks]
        if p.readout_lr:  # its own rate; a learning-rate schedule scales it too
            self.head_optimizer = optimizer_factory(p.optimizer, p.readout_lr)(
                self.head.parameters()
            )
            self.optimizers_made.append(self.head_optimizer)
        else:
            self.head_optimizer = self.make_optimizer(self.head.parameters())
        device = self.network.blocks[0].linear.weight.device
        self.blur = blur_operator(self.network.n_features, p.mask_blur).to(device)

    @property
    def prediction(self) -> str:
        return "readout"

    def corrupt(self, x: Tensor) -> Tensor:
        """The sample under a small corruption: Gaussian noise of std ``noise``, clipped."""
        noise = torch.randn(x.shape, generator=self.generator, device=x.device)
        return (x + self.params.noise * noise).clamp(0.0, 1.0)

    def hybrid(self, x: Tensor, partner: Tensor) -> Tensor:
        """``m ⊙ x + (1 − m) ⊙ partner`` with blurred random binary masks ``m``."""
        bits = torch.randint(0, 2, x.shape, generator=self.generator, device=x.device).to(x)
        mask = (bits @ self.blur.T > 0.5).to(x.dtype)
        return mask * x + (1 - mask) * partner

    def negative_partners(self, batch: int, device: torch.device) -> Tensor:
        """Index of each sample's negative partner, ``(i - shift) mod B`` for a random cyclic
        shift in 1 … B−1 (never the sample itself), drawn on ``device``: no host round trip."""
        if batch < 2:
            raise ValueError("unsupervised PhyLL needs batches of at least 2 samples")
        shift = torch.randint(1, batch, (1,), generator=self.generator, device=device)
        return (torch.arange(batch, device=device) - shift) % batch

    def make_pairs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Positive and negative inputs (stacked as ``[positives; negatives]``) and partners.

        ``instance``: two corrupted views of every sample; the negative partner of view *i* is
        the other view of sample ``partners[i]``. ``hybrid``: the corrupted sample and its
        hybrid with sample ``partners[i]``.
        """
        partners = self.negative_partners(x.shape[0], x.device)
        if self.params.pairs == "hybrid":
            return self.corrupt(x), self.hybrid(x, x[partners]), partners
        return self.corrupt(x), self.corrupt(x), partners

    def block_objective(self, index: int) -> BlockObjective:
        p = self.params
        return UnsupervisedObjective(p.pairs, self.references[index], p.theta)

    def block_loss(self, out: Tensor, index: int, partners: Tensor) -> Tensor:
        """The contrastive loss of block ``index`` on its stacked outputs ``[pos; neg]``."""
        return self.block_objective(index)(out, {"partners": partners})

    def prepare_step(self, x: Tensor, y: Tensor) -> BlockStep:
        """The two label-free views of every sample, stacked; the partners as context."""
        first, second, partners = self.make_pairs(self.network.embed(x, None))
        return BlockStep(torch.cat([first, second]), y, {"partners": partners})

    def finish_step(
        self, step: BlockStep, outputs: list[Tensor], neutral: list[Tensor] | None
    ) -> None:
        """The readout's step on every block's outputs of the first views."""
        del neutral
        batch = step.labels.shape[0]
        features = torch.cat([o[:batch] for o in outputs], dim=1)
        train_readout(self.head, self.head_optimizer, features, step.labels)

    def prediction_input(self, x: Tensor) -> Tensor:
        return self.network.embed(x, None)

    def scores_from_outputs(self, x: Tensor, outputs: list[Tensor]) -> Tensor:
        return self.head(torch.cat(outputs, dim=1))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "head_optimizer": self.head_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.head_optimizer.load_state_dict(state["head_optimizer"])
