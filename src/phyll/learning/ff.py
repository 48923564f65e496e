r"""FF — the forward-forward algorithm (Hinton, "The Forward-Forward Algorithm", 2022).

The reference model-free local rule, trained on the same physical network as PhyLL. For a batch
``(x, y)``, positive data embed the true label and negative data a wrong one (uniform among the
others); every block drives its physical system once with both (``2B`` queries per block, under
``torch.no_grad()``) and updates only its own digital weights from its own loss:

* **goodness** of a block output :math:`y_l`: the mean of its squared activities,
  :math:`G = \frac{1}{d}\sum_j y_{l,j}^2` (Hinton uses the sum; the mean keeps one θ valid for
  every width);
* **local loss**: the logistic loss of "positive" against the threshold θ,
  :math:`\mathrm{softplus}(\theta - G^+) + \mathrm{softplus}(G^- - \theta)`, averaged over
  the batch (Hinton's :math:`p = \sigma(G - \theta)`);
* the next block sees the output *normalised* (the block's drive map divides each sample by its
  maximum), so goodness is not passed on, as in the paper's layer normalisation;
* **prediction**: the label whose embedding gives the largest goodness summed over blocks
  (``prediction="readout"``: a linear readout on detached block outputs).

The positive/negative loop, prediction and state are shared with PhyLL
(:mod:`phyll.learning.local`); only goodness and loss differ. The default θ = 2 suits the
network's standardised measurements and |·| activations (outputs of order 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor

from phyll.learning.blockwise import BlockObjective
from phyll.learning.local import LocalContrastiveRule, LocalParams, PairedObjective
from phyll.params import param


def mean_square_goodness(y: Tensor) -> Tensor:
    """Hinton's goodness per sample: mean of the squared activities."""
    return y.pow(2).mean(dim=1)


def threshold_pair_loss(y_pos: Tensor, y_neg: Tensor, theta: float) -> Tensor:
    """FF's block loss: softplus(θ − G⁺) + softplus(G⁻ − θ), averaged over the batch (and
    over the negatives when ``y_neg`` holds several per sample)."""
    g_pos, g_neg = mean_square_goodness(y_pos), mean_square_goodness(y_neg)
    if g_neg.shape == g_pos.shape:
        return (F.softplus(theta - g_pos) + F.softplus(g_neg - theta)).mean()
    return F.softplus(theta - g_pos).mean() + F.softplus(g_neg - theta).mean()


@dataclass(frozen=True)
class FFParams(LocalParams):
    """FF's parameters: as PhyLL's, with θ the goodness threshold."""

    theta: float = param(2.0, "goodness threshold θ")


class ForwardForward(LocalContrastiveRule):
    """Forward-forward training of a physical network (see module docstring).

    Parameters (:class:`FFParams`): ``theta`` (goodness threshold, 2), ``lr``, ``optimizer``,
    ``prediction`` (``"goodness"``, the paper's, or ``"readout"``).
    """

    name = "ff"
    Params = FFParams

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "goodness": "mean square activity vs threshold theta"}

    def goodness(self, y: Tensor, block: int) -> Tensor:
        del block
        return mean_square_goodness(y)

    def local_loss(self, y_pos: Tensor, y_neg: Tensor, block: int) -> Tensor:
        """softplus(θ − G⁺) + softplus(G⁻ − θ), averaged over the batch (and over the
        negatives when there are several per sample)."""
        del block
        return threshold_pair_loss(y_pos, y_neg, self.params.theta)

    def block_objective(self, index: int) -> BlockObjective:
        del index
        return PairedObjective(threshold_pair_loss, (self.params.theta,), self.params.negatives)
