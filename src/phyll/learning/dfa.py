r"""DFA — augmented direct feedback alignment (Nakajima et al., Nat. Commun. 13, 7847, 2022).

Model-free training of every block from the *output* error, sent to each block through a fixed
random matrix instead of backwards through the physics:

1. **Forward (the only physical work).** The data with the neutral label code (the architecture
   PhyLL, PAT and backprop train) go through the blocks; block *l* drives its system once per
   sample (``B`` queries per block, ``torch.no_grad()``) and computes its output
   ``h_l = |W_l u_l|`` from the measurement (``u_l``: conditioned measurement and skip input).
   ``h_l`` (detached) drives block *l+1*.
2. **Output error.** A readout head (layer norm + linear, on the last block's output, or on all)
   gives class scores; its cross-entropy trains the head exactly (it is digital), and its
   error :math:`e = \mathrm{softmax}(s) - \mathrm{onehot}(y)` is what the blocks learn from.
3. **Direct feedback.** Block *l* receives :math:`\delta h_l = (e B_l) \odot g(d_l)` with
   :math:`B_l` a fixed random ``[classes, width]`` matrix (entries N(0, 1/classes), drawn once
   from the seed, kept in the rule's ``state_dict`` and so in every checkpoint), and updates
   :math:`W_l` by :math:`\delta h_l` through its own digital activation only (exact:
   ``sign(W_l u_l)`` for ``|·|``). Nothing flows through the physics or between blocks.
4. **Surrogate derivative** ``g`` ("augmented" DFA: Nakajima et al. replace the unknown
   derivative of the physical nonlinearity by a chosen function). In a phyll block the physics
   that follows ``h_l`` is the next block's system, driven by :math:`d_l = h_l / \max_j h_{l,j}`
   (in [0, 1]); ``g`` stands for its derivative as a function of that drive:

   * ``one``: :math:`g = 1` (the physics treated as linear);
   * ``output``: :math:`g = d_l`, the block's output itself (a square-law response,
     :math:`\partial a^2 / \partial a \propto a`, as an intensity detector's);
   * ``sigmoid``: :math:`g = 4 d_l (1 - d_l)`, the derivative of a saturating, sigmoid-like
     response (largest mid-range, zero at the ends of the drive range).

   Every block uses the same ``g`` (the last one too, as in the paper's rule). The default,
   ``sigmoid``, was chosen on validation accuracy: 97.8 % on digits against 97.2 % (``one``)
   and 97.0 % (``output``), and never below the others on vowels7 and vowels (3 seeds, 30
   epochs; docs/insitu-training.md).

Costs per step: ``B`` queries per block (PhyLL: ``2B``), one forward pass and, per block, one
``[B, classes] × [classes, width]`` product and the gradient of its own weights: no backward
pass through depth, no twin. Prediction: one pass per sample and block, then the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from phyll.learning.base import (
    HeadInput,
    LearningRule,
    ModelSpec,
    OptimizerFactory,
    RuleParams,
    evaluating,
)
from phyll.learning.readout import ReadoutParams, readout_optimizer
from phyll.network import Model, PhysicalNetwork
from phyll.params import param

Surrogate = Literal["one", "output", "sigmoid"]


@dataclass(frozen=True)
class DFAParams(ReadoutParams):
    """DFA's parameters: the surrogate derivative and what the readout head reads."""

    surrogate: Surrogate = param(
        "sigmoid", "surrogate of the physics' derivative: one, output (square law), sigmoid"
    )
    head_input: HeadInput = param("last", "the readout reads the last block's output or all")


def surrogate_derivative(name: Surrogate, h: Tensor) -> Tensor:
    """``g(d)`` of block outputs ``h`` [B, width], ``d = h / max(h)`` per sample (the drive of
    the next system; see the module docstring)."""
    d = h / h.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
    if name == "one":
        return torch.ones_like(d)
    if name == "output":
        return d
    return 4.0 * d * (1.0 - d)


def feedback_matrices(network: PhysicalNetwork, n_classes: int, seed: int) -> list[Tensor]:
    """One fixed random feedback matrix ``[n_classes, width]`` per block, N(0, 1/n_classes),
    drawn from ``seed`` (on the host, then moved to the weights' device)."""
    draw = torch.Generator().manual_seed(seed + 6007)
    return [
        (torch.randn(n_classes, b.out_features, generator=draw) / math.sqrt(n_classes)).to(
            b.linear.weight.device
        )
        for b in network.blocks
    ]


class DirectFeedbackAlignment(LearningRule):
    """Augmented DFA on a physical network (see module docstring).

    Args: see :class:`~phyll.learning.base.LearningRule`; ``seed`` also draws the feedback
    matrices. Parameters (:class:`DFAParams`): ``surrogate`` (``one``, ``output``,
    ``sigmoid``), ``head_input``, ``lr``, ``readout_lr``, ``optimizer``.
    """

    name = "dfa"
    model_free = True
    Params = DFAParams
    params: DFAParams

    @classmethod
    def model_spec(cls, params: RuleParams) -> ModelSpec:
        head_input = getattr(params, "head_input", "last")
        return ModelSpec(label_channels=True, head="readout", head_input=head_input)

    def __init__(
        self,
        model: Model,
        params: DFAParams | None = None,
        *,
        seed: int = 0,
        optimizer: OptimizerFactory | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(model, params, seed=seed, optimizer=optimizer, **overrides)
        if self.network.n_classes < 2 or model.head is None:
            raise ValueError("dfa needs a model with label channels and a readout head")
        self.head = model.head
        self.n_classes = self.head.linear.out_features
        self.feedback = feedback_matrices(self.network, self.n_classes, seed)
        self.optimizer = self.make_optimizer(self.network.parameters())
        self.head_optimizer = readout_optimizer(self, self.head)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "feedback": "fixed random N(0, 1/classes) matrix per block, from the seed",
        }

    def outputs(self, x: Tensor) -> list[Tensor]:
        """Every block's output for data ``x`` (neutral label); each keeps the graph to its own
        block's weights only (the physics runs under ``no_grad``, inputs are detached)."""
        h = self.network.embed(x, None)
        outputs = []
        for block in self.network.blocks:
            z = None
            if block.use_physics:
                with torch.no_grad():
                    z = block.measure(h)  # one physical query per sample
            out = block.digital(z, h)
            outputs.append(out)
            h = out.detach()
        return outputs

    def head_scores(self, outputs: list[Tensor]) -> Tensor:
        """The readout's class scores from (detached) block outputs."""
        last = self.params.head_input == "last"
        return self.head(outputs[-1] if last else torch.cat(outputs, dim=1))

    def train_step(self, x: Tensor, y: Tensor) -> float:
        self.model.train()
        outputs = self.outputs(x)
        scores = self.head_scores([o.detach() for o in outputs])
        loss = F.cross_entropy(scores, y.long())  # trains the head exactly
        with torch.no_grad():  # ∂loss/∂scores, and each block's feedback signal δh_l
            error = (scores.softmax(dim=1) - F.one_hot(y.long(), self.n_classes)) / x.shape[0]
            signals = [
                (error @ b) * surrogate_derivative(self.params.surrogate, out)
                for out, b in zip(outputs, self.feedback, strict=True)
            ]
        # Σ_l <h_l, δh_l>: its gradient w.r.t. W_l is δh_l through block l's activation only
        total = loss + sum((out * s).sum() for out, s in zip(outputs, signals, strict=True))
        self.optimizer.zero_grad()
        self.head_optimizer.zero_grad()
        total.backward()
        self.optimizer.step()
        self.head_optimizer.step()
        return loss.item()

    def scores(self, x: Tensor) -> Tensor:
        """The readout's class scores ``[B, classes]`` (one physical pass per block)."""
        with evaluating(self.model), torch.no_grad():
            return self.head_scores(self.outputs(x))

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "head_optimizer": self.head_optimizer.state_dict(),
            "feedback": [b.clone() for b in self.feedback],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shapes = [tuple(b.shape) for b in self.feedback]
        if [tuple(b.shape) for b in state["feedback"]] != shapes:
            raise ValueError(f"the checkpoint's feedback matrices do not have shapes {shapes}")
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])
        self.head_optimizer.load_state_dict(state["head_optimizer"])
        self.feedback = [b.to(self.device) for b in state["feedback"]]
