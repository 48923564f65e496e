"""Digital FLOPs of PyTorch code: every aten operation counted by a documented formula.

:class:`FlopCounter` is a :class:`~torch.utils._python_dispatch.TorchDispatchMode` that sees every
aten operation run while it is active and adds the operation's FLOPs to ``total``. Matrix-class
operations reuse the formulas of :mod:`torch.utils.flop_counter` (``flop_registry``, the formulas
behind ``FlopCounterMode``), so their real-valued counts are PyTorch's own; everything
``FlopCounterMode`` misses is added here. It is a mode of its own rather than a
``FlopCounterMode`` with a ``custom_mapping`` because, once elementwise operations count, every
operation of a training step needs a formula, and ``FlopCounterMode`` pays on each call for
work a total does not need: it builds a set of 15 metadata overloads to test the call against,
re-enters itself to try a decomposition of every operator outside its registry, tallies per
module (with global module hooks) and maps arguments to shapes with a pytree traversal. Here a
call costs one dict lookup (each operator overload is classified once) and one formula: the
counter costs about as much as an empty dispatch mode, and its overhead on a small Linear +
Adam training step is about a third of ``FlopCounterMode``'s.

Sources of the conventions (the last column of the table):

* **PyTorch**: the formulas of :mod:`torch.utils.flop_counter`, 2 FLOPs per multiply-accumulate.
* **benchFFT**: FFTW's benchmark methodology (fftw.org/speed/method.html): a complex transform
  of N points costs 5·N·log2 N (radix-2 Cooley–Tukey), a real one half that.
* **LAWN 41**: LAPACK Working Note 41 (the LAPACK installation guide), its operation counts for
  getrf, getrs, potrf, trtrs, geqrf, orgqr; complex operations count a multiply as 6 and an add
  as 2 real FLOPs, so a complex multiply-accumulate is 8 (4× a real one).
* **McMahon**: the weights of F. H. McMahon, "The Livermore Fortran Kernels", LLNL UCRL-53745
  (1986), also Dongarra's (netlib.org/utk/people/JackDongarra/SLIDES/sc97-perfeval/
  tsld011.htm): ``+ − × compare`` = 1, ``÷ √`` = 4, an elementary or special function (exp,
  log, sin, erf, lgamma, …) = 8. A composite function costs its textbook formula's operations
  with these weights.

Only floating-point work is counted: operations on integer or boolean tensors (label
comparisons, index arithmetic, masks) are not FLOPs and count 0. Counts are integers
(fractional formulas are rounded). "c:" gives the cost on complex dtypes; the complex forms of
other elementwise operators are their textbook formulas (lerp 10, addcmul 10, addcdiv 21,
sigmoid_backward 18) or, for functions, 4× the real cost.

====================================  =================================================  =========
operation (aten; in-place, out= and   FLOPs per call                                     source
``_foreach_`` variants alike)
====================================  =================================================  =========
mm, addmm, bmm, baddbmm,              torch's formula: 2 per multiply-accumulate (MAC;   PyTorch
convolution (+ backward), attention   addmm's bias add rides in the 2·k of each output)
— on complex dtypes                   ×4: 8 per complex MAC                              LAWN 41
_fft_c2c (fft, ifft, fft2, fftn, …)   5·N·log2 N per transform of N = ∏ transformed      benchFFT
                                      sizes, × transforms in the batch (= 5·numel·log2
                                      N); +2 per element when normalised (1/N, 1/√N)
_fft_r2c (rfft…), _fft_c2r (irfft…)   half: 2.5·N·log2 N per transform (N = real size);  benchFFT
                                      +2 per complex output (r2c), +1 per real output
                                      (c2r) when normalised
_linalg_solve_ex, linalg_solve[_ex]   ⅔·n³ + 2·n²·k per system (LU, then two            LAWN 41
                                      triangular solves per right-hand side), × batch
linalg_inv[_ex]                       the same with k = n (torch solves A·X = I): 8/3·n³ LAWN 41
linalg_lu_factor_ex, linalg_lu,       m·n² − n³/3 per m×n matrix, m ≥ n (⅔·n³ square;    LAWN 41
_linalg_det, _linalg_slogdet          m, n swapped when m < n)
linalg_lu_solve, cholesky_solve       2·n²·k per system                                  LAWN 41
linalg_solve_triangular,              n²·k per system                                    LAWN 41
triangular_solve
linalg_cholesky_ex                    n³/3 per matrix                                    LAWN 41
geqrf, linalg_qr                      2·m·n² − ⅔·n³ (m ≥ n); + forming Q (orgqr:         LAWN 41
                                      4mnk − 2(m+n)k² + 4/3·k³) unless mode='r'
— any of these on complex dtypes      ×4                                                 LAWN 41
add, sub, rsub, neg                   1 per output element (+1 for alpha ≠ 1); c: 2      McMahon
mul                                   1; c×c: 6 (4 ×, 2 +); c×real: 2                    LAWN 41
div, true_divide                      4 (+1 with rounding_mode); c÷c: 17 (6 ×, 3 +,      McMahon
                                      2 ÷); c÷real: 8
floor_divide; remainder, fmod         5; 7 (a − b·floor(a/b))                            McMahon
abs, sign, sgn, angle                 1; c: abs 7 (a²+b², √), sgn 15 (z/|z|), angle 8    McMahon
comparisons, clamp[_min/_max], relu,  1 per comparison (clamp with both bounds,          McMahon
maximum, minimum, hardtanh, round,    hardtanh: 2); rounding: 1
floor, ceil, trunc
reciprocal, sqrt, rsqrt               4 (c: 11), 4, 8 (1/√x)                             McMahon
square; pow by a scalar exponent      1 (c: 6); exponent 2: 1, 3: 2, ½: 4, −½: 8, −1: 4, McMahon
                                      −2: 5, 0 or 1: 0 (the cases torch's kernel
                                      special-cases), other: 8; c: 6 for exponent 2,
                                      else 32; pow by a tensor exponent: 8
exp, exp2, expm1, log, log2, log10,   8 per element (one function); c: ×4 = 32 (a        McMahon
log1p, sin, cos, tan, asin, acos,     complex function needs about three real ones,
atan, atan2, sinh, cosh, tanh, asinh, e.g. exp(a+ib) = eᵃ(cos b + i sin b))
acosh, atanh, erf, erfc, erfinv,
lgamma, digamma, polygamma, i0, sinc
sigmoid, logit, silu, softplus, mish  13, 13, 14, 22, 25 per element: σ = 1/(1+e⁻ˣ)     McMahon
                                      (8+1+4), x·σ, softplus = log1p(exp(βx))/β with
                                      its threshold test (1+1+8+8+4), x·tanh(softplus)
elu (selu, celu), gelu, hardsigmoid,  12, 12 (erf form ½x(1+erf(x/√2)); tanh form 16),   McMahon
hardswish, glu, logaddexp, hypot,     4, 5, 14, 20, 7, 9, 3, 3, 6, 18 (r·cos θ, r·sin θ)
xlogy, lerp, addcmul, addcdiv, polar
backward operators of activations     sigmoid, tanh 3; threshold (relu) 1; silu 18;      McMahon
                                      softplus 16; gelu 25 (tanh form 30); elu 12
other pointwise-tagged operators      1 per output element (c: 2)                        McMahon
sum, nansum, prod, amax, amin, max,   1 per *input* element (a reduction of n values     McMahon
min, argmax, argmin, all, any,        takes n − 1 operations, counted n); c: 2;
count_nonzero, cumsum, cumprod        aminmax: 2
mean                                  1 per input + 4 per output (the division)          McMahon
var, var_mean; std, std_mean          4 per input (mean, subtract, square, add) + 8;     McMahon
                                      12 per output (two divisions; √)
linalg_vector_norm, norm,             ord 2: 2 per input + 4 per output (√); 1, ∞, 0:    McMahon
_foreach_norm                         2 per input; other p: 10 per input + 8 per output
logsumexp                             11 per input (max, subtract, exp, add) + 9 per     McMahon
                                      output (log, add)
_softmax; _log_softmax                15 per element (max, subtract, exp, sum, divide);  McMahon
                                      12 per element (max, subtract, exp, sum, subtract)
                                      + 8 per row (log)
_softmax_backward_data;               4 per element: y·(g − Σg·y); 11: g − exp(y)·Σg    McMahon
_log_softmax_backward_data
native_layer_norm, native_group_norm, 6 per element (mean 1, variance 3, normalise 2)    McMahon
native_batch_norm (training)          + 1 with a weight, + 1 with a bias; 13 per
                                      normalised group (2 ÷, + ε, 1/√)
native_batch_norm (evaluation)        2 per element (+ affine); 9 per channel            McMahon
their backward operators              10 per element for the input gradient, 2 for the   McMahon
                                      weight's, 1 for the bias's
mse_loss; mse_loss_backward           2 per element (+1 when reduced, +4 for the mean);  McMahon
                                      3 per element
binary_cross_entropy,                 23, 22, 10 per element (+1 when reduced, +4 for    McMahon
…_with_logits, smooth_l1_loss,        the mean); their backward operators 9
huber_loss
nll_loss_forward; nll_loss_backward   1 per target (+2; +1 weighted), +4 for the mean    McMahon
native_dropout; _backward             2 per element when training (mask, scale)          McMahon
index_add, scatter_add,               1 per source element (accumulating adds)           McMahon
scatter_reduce, index_put
(accumulate=True), embedding_dense_
backward
sort; topk; median, kthvalue          numel·log2 n comparisons (n = sorted length);      McMahon
                                      numel + out·log2 k; numel
_euclidean_dist (cdist via matmul)    out·(2d + 9) + 3·numel(x1) + 2·numel(x2): norms,   McMahon
                                      a matmul with d + 2 columns, clamp, √ (torch's
                                      kernel)
_cdist_forward, _pdist_forward (and  per pair of rows: d differences + the norm above   McMahon
their backward operators)
_fused_adam_, _fused_adamw_           22 per parameter element (Adam's update, below;    McMahon
                                      +2 L2 decay, +1 decoupled decay, +1 AMSGrad)
_fused_sgd_                           2 per element (+2 decay, +3 momentum, +2 Nesterov) McMahon
views, reshape, cat, stack, index,    0: data movement and creation, no arithmetic (a    —
gather, scatter, index_put, copy_,    selection by a mask is data movement, the
clone, _to_copy (.to), detach, zeros, comparison that made the mask is counted;
ones, full, fill_, masked_fill,       conjugation is a sign flip torch applies lazily;
where, empty, arange, linspace, rand, random numbers are data)
randn, randint, randperm, normal_,
uniform_, bernoulli_, poisson, roll,
flip, pad, tril, triu, diag_embed,
complex, view_as_real, conj, item
====================================  =================================================  =========

Adam (torch 2.13, single-tensor, foreach or fused alike) costs 22 FLOPs per parameter element:
``exp_avg.lerp_`` 3, ``exp_avg_sq.mul_`` 1, ``.addcmul_`` 3, ``sqrt`` 4, divide by the bias
correction 4, ``+ eps`` 1, ``param.addcdiv_`` 6, plus 1 per parameter tensor for ``step += 1``
(AdamW: +1 per element for the decoupled decay); plain SGD costs 2 per element
(``param.add_(grad, alpha=-lr)``), 4 with momentum after the first step.

Operators with a CompositeImplicitAutograd kernel and no formula (matmul, linear, einsum,
cross_entropy, layer_norm, dropout, …) are decomposed and their parts counted. An operator none
of these rules covers (eigh, svd, pooling, interpolation, …) counts 0 and is logged once as a
warning by the ``phyll.flops`` logger.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch._ops import OpOverload
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["FlopCounter", "count_flops"]

_log = logging.getLogger(__name__)


@functools.cache
def _torch_registry() -> dict[Any, Callable[..., int]]:
    """torch's matrix-class formulas, imported when the first operator is classified:
    :mod:`torch.utils.flop_counter` pulls in much of torch's compiler stack (about a second),
    which a process that never counts (``phyll --help``, a lab's ``phyll serve``) should not
    pay."""
    from torch.utils.flop_counter import flop_registry

    return flop_registry


#: A formula: (args, kwargs, output of the call) -> FLOPs.
Rule = Callable[[tuple[Any, ...], dict[str, Any], Any], int]

ADD = 1  # +, −, ×, compare (McMahon's weights, see the module docstring)
DIV = 4  # ÷, √
FN = 8  # exp, log, sin, … one elementary or special function
COMPLEX_FN = 4  # a complex function ≈ 4 real ones
COMPLEX_MAC = 4  # a complex multiply-accumulate = 4 real ones (8 FLOPs)


#: the kinds of work a count is broken into (:attr:`FlopCounter.by_kind`)
KINDS = ("matmul", "fft", "linalg", "elementwise")


class FlopCounter(TorchDispatchMode):
    """Counts the FLOPs of every aten operation run while active into ``total``, and by kind
    of work into ``by_kind`` (:data:`KINDS`: matrix products, FFTs, linear algebra, and
    elementwise work, reductions included).

    Nested counters (and other dispatch modes) each see every operation, so each counts it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.by_kind = dict.fromkeys(KINDS, 0)

    def __torch_dispatch__(
        self, func: OpOverload, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        known = _RULES.get(func)
        if known is None:
            known = _RULES[func] = (_classify(func), _work_kind(func))
        rule, kind = known
        if rule is _decompose:
            with self:
                return func.decompose(*args, **kwargs)
        out = func(*args, **kwargs)
        if rule is not _free:
            flops = rule(args, kwargs, out)
            self.total += flops
            self.by_kind[kind] += flops
        return out


def count_flops(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> int:
    """Run ``fn(*args, **kwargs)`` and return the FLOPs it did, counted by :class:`FlopCounter`.

    Everything inside counts, simulated physics included (only a
    :class:`~phyll.accounting.Meter` moves physics to its physical column).
    """
    with FlopCounter() as counter:
        fn(*args, **kwargs)
    return counter.total


# ------------------------------------------------------------------------------------ helpers
def _free(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """Data movement and creation: no arithmetic."""
    return 0


def _decompose(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """Marker: run the operator's CompositeImplicitAutograd decomposition and count its parts."""
    raise AssertionError("decomposed operators are never counted themselves")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    """An argument given positionally or by name (the dispatcher drops trailing defaults)."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _kind(x: Any) -> int:
    """0 for non-floating tensors (not FLOPs), 1 for real, 2 for complex."""
    if x.is_complex():
        return 2
    return 1 if x.is_floating_point() else 0


def _first(out: Any) -> Tensor:
    return out if isinstance(out, Tensor) else out[0]


def _tensors(x: Any) -> list[Tensor]:
    return [x] if isinstance(x, Tensor) else [t for t in x if isinstance(t, Tensor)]


# ---------------------------------------------------------------------- elementwise operators
def _pointwise(real: int, complex_: int) -> Rule:
    """``real`` FLOPs per output element, ``complex_`` when the first argument (the output if
    that is a scalar) is complex; 0 on integer and boolean tensors."""
    costs = (0, real, complex_)

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        x = args[0] if isinstance(args[0], Tensor) else _first(out)
        return costs[_kind(x)] * _first(out).numel()

    return rule


def _with_alpha(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    """add, sub, rsub: one operation, one more to scale by ``alpha`` ≠ 1."""
    kind = _kind(out)
    return kind * (1 + (_arg(args, kwargs, 2, "alpha", 1) != 1)) * out.numel()


def _is_complex(x: Any) -> bool:
    return x.is_complex() if isinstance(x, Tensor) else isinstance(x, complex)


def _binary(real: int, both_complex: int, one_complex: int) -> Rule:
    """mul/div: a complex × complex product costs more than a complex × real one."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        if out.is_complex():
            both = _is_complex(args[0]) and _is_complex(args[1])
            per = both_complex if both else one_complex
        elif out.is_floating_point():
            per = real + (kwargs.get("rounding_mode") is not None)
        else:
            return 0
        return per * out.numel()

    return rule


#: torch's CPU pow kernel special-cases these scalar exponents (x·x, sqrt, reciprocal, …).
_POW_BY_SCALAR = {0: 0, 1: 0, 2: ADD, 3: 2 * ADD, 0.5: DIV, -0.5: 2 * DIV, -1: DIV, -2: DIV + ADD}


def _pow(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    exponent = args[1]
    by_scalar = isinstance(args[0], Tensor) and not isinstance(exponent, Tensor)
    kind = _kind(out)
    if kind == 2:
        per = 6 if by_scalar and exponent == 2 else COMPLEX_FN * FN
    else:
        per = kind * (_POW_BY_SCALAR.get(exponent, FN) if by_scalar else FN)
    return per * out.numel()


def _clamp(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    low = _arg(args, kwargs, 1, "min", None)
    high = _arg(args, kwargs, 2, "max", None)
    return _kind(out) * max((low is not None) + (high is not None), 1) * out.numel()


def _gelu(backward: bool) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        tanh = kwargs.get("approximate", "none") == "tanh"
        per = (30 if tanh else 25) if backward else (16 if tanh else 12)
        return _kind(out) * per * out.numel()

    return rule


def _dropout(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    train = _arg(args, kwargs, 2, "train", True)
    return 2 * _kind(args[0]) * args[0].numel() if train is not False else 0


# ------------------------------------------------------------------------- reductions
def _reduction(per_in: int, per_out: int = 0) -> Rule:
    """``per_in`` per input element + ``per_out`` per output element; ×2 on complex input."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        x = args[0]
        return _kind(x) * (per_in * x.numel() + per_out * _first(out).numel())

    return rule


def _max_min(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """max/min: a reduction, or elementwise between two tensors."""
    if len(args) > 1 and isinstance(args[1], Tensor):
        return _kind(out) * out.numel()
    return _kind(args[0]) * args[0].numel()


def _norm_costs(order: Any) -> tuple[int, int]:
    if order is None or order == 2:
        return 2 * ADD, DIV  # square and add; √ of the sum
    if order in (1, 0, math.inf, -math.inf):
        return 2 * ADD, 0  # abs (or compare) and add (or max)
    return 2 * ADD + FN, FN  # abs, pow, add; the 1/p root


def _vector_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    x = args[0]
    per_in, per_out = _norm_costs(_arg(args, kwargs, 1, "ord", kwargs.get("p", 2)))
    return _kind(x) * (per_in * x.numel() + per_out * out.numel())


def _softmax(per_element: int, per_row: int) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        x = args[0]
        n = x.numel()
        rows = n // max(x.shape[args[1]], 1) if x.dim() else 1
        return _kind(x) * (per_element * n + per_row * rows)

    return rule


def _sort(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    x = args[0]
    dim = _arg(args, kwargs, 1, "dim", -1)
    n = x.shape[dim] if x.dim() else 1
    return round(_kind(x) * x.numel() * math.log2(n)) if n > 1 else 0


def _topk(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    x, k = args[0], args[1]
    return _kind(x) * (x.numel() + round(out[0].numel() * math.log2(k) if k > 1 else 0))


# ------------------------------------------------------------------ normalisation and losses
def _affine(weight: Any, bias: Any) -> int:
    return (weight is not None) + (bias is not None)


def _layer_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    x, shape, weight, bias = args[:4]
    n = x.numel()
    groups = n // max(math.prod(shape), 1)
    return _kind(x) * ((6 + _affine(weight, bias)) * n + 13 * groups)


def _group_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    x, weight, bias, batch, _, _, group = args[:7]
    return _kind(x) * ((6 + _affine(weight, bias)) * x.numel() + 13 * batch * group)


def _batch_norm(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """native_batch_norm, _native_batch_norm_legit[.no_stats|_no_training]: batch statistics
    when training, the running ones otherwise."""
    x, weight, bias = args[:3]
    # (input, weight, bias, mean, var, training, …) has 8 arguments, .no_stats 6 (training
    # 4th), _no_training 7 (no flag)
    training = {8: args[5], 6: args[3]}.get(len(args), False)
    channels = x.shape[1] if x.dim() > 1 else 1
    per_element, per_channel = (6, 13) if training else (2, 9)
    return _kind(x) * ((per_element + _affine(weight, bias)) * x.numel() + per_channel * channels)


def _norm_backward(mask_index: int) -> Rule:
    """Layer/batch/group norm backward: 10 per element for dx, 2 for dweight, 1 for dbias."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        grad = args[0]
        dx, dw, db = args[mask_index]
        return _kind(grad) * (10 * dx + 2 * dw + db) * grad.numel()

    return rule


def _loss(per_element: int, reduction_index: int) -> Rule:
    """An elementwise loss: +1 per element when reduced, +4 for the mean's division."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        x = args[0]
        reduction = _arg(args, kwargs, reduction_index, "reduction", 1)
        return _kind(x) * ((per_element + (reduction != 0)) * x.numel() + DIV * (reduction == 1))

    return rule


def _nll(weight_index: int, per_weight: int) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        target = args[weight_index - 1]
        weighted = args[weight_index] is not None
        mean = args[weight_index + 1] == 1
        return target.numel() * (1 + per_weight * weighted) + DIV * mean

    return rule


def _scaled(per: int) -> Rule:
    """``per`` FLOPs per element of the first input (a backward operator's gradient)."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        return _kind(args[0]) * per * args[0].numel()

    return rule


def _source(index: int) -> Rule:
    """Accumulating writes (index_add, scatter_add, …): one add per source element."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        return _kind(args[index]) * args[index].numel()

    return rule


def _scatter(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    if kwargs.get("reduce") is None or not isinstance(args[3], Tensor):
        return 0
    return _kind(args[3]) * args[3].numel()


def _index_put(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    values = args[2]
    return _kind(values) * values.numel() if _arg(args, kwargs, 3, "accumulate", False) else 0


def _pairwise(x_index: int, p_index: int, dist_index: int | None) -> Rule:
    """cdist / pdist (forward and backward): per pair of rows, a difference per coordinate and
    the p-norm of the differences (as linalg_vector_norm)."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        x = args[x_index]
        dist = out if dist_index is None else args[dist_index]
        per_coordinate, per_pair = _norm_costs(_arg(args, kwargs, p_index, "p", 2))
        return _kind(x) * dist.numel() * ((per_coordinate + ADD) * x.shape[-1] + per_pair)

    return rule


def _euclidean_dist(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
    """torch's kernel: squared norms, a matmul with d + 2 columns, clamp and √."""
    x1, x2 = args
    d = x1.shape[-1]
    norms = 3 * x1.numel() + 2 * x2.numel()  # x1: square, add, ×(−2); x2: square, add
    return _kind(out) * ((2 * (d + 2) + ADD + DIV) * out.numel() + norms)


# ------------------------------------------------------------------------------------ FFTs
def _fft(per_point: float, scale_per_output: int, real_input: bool) -> Rule:
    """``per_point``·N·log2 N per transform (5 complex, 2.5 real), + a normalisation pass."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> int:
        signal = args[0] if real_input else out  # the real side of r2c / c2r; c2c: either
        if signal.numel() == 0:
            return 0
        n = math.prod(signal.shape[d] for d in args[1])
        flops = per_point * signal.numel() * math.log2(n)
        return round(flops) + (scale_per_output * out.numel() if args[2] else 0)

    return rule


# ---------------------------------------------------------------------------- linear algebra
def _complex_mac(x: Tensor) -> int:
    return COMPLEX_MAC if x.is_complex() else 1


def _solve_flops(a: Tensor, x: Tensor, lu_numel: int) -> int:
    """⅔·n³ per factorised n×n matrix + 2·n²·k per solution of k right-hand sides."""
    n = a.shape[-1]
    return round((2 / 3 * n * lu_numel + 2 * n * x.numel()) * _complex_mac(a))


def _solve(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """_linalg_solve_ex (result, LU, …), linalg_solve[_ex] (result, …), linalg_inv[_ex]."""
    a = args[0]
    lu = out[1] if isinstance(out, tuple) and len(out) == 4 else a
    return _solve_flops(a, _first(out), lu.numel())


def _lu_matrix(m: int, n: int) -> float:
    """LAPACK getrf: m·n² − n³/3 for m ≥ n."""
    if m < n:
        m, n = n, m
    return m * n * n - n**3 / 3


def _lu(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    a = args[0]
    m, n = a.shape[-2:]
    batch = a.numel() // max(m * n, 1)
    return round(batch * _lu_matrix(m, n) * _complex_mac(a))


def _triangular(factor: int, a_index: int) -> Rule:
    """``factor``·n²·k per system: 2 for LU / Cholesky solves, 1 for one triangular solve."""

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        a, x = args[a_index], _first(out)
        return factor * a.shape[-1] * x.numel() * _complex_mac(a)

    return rule


def _cholesky(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    a = args[0]
    return round(a.shape[-1] * a.numel() / 3 * _complex_mac(a))


def _qr(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """geqrf: 2·max(m, n)·k² − ⅔·k³ with k = min(m, n); + orgqr to form Q with c columns
    (reduced: k, complete: m): 4·m·c·k − 2·(m + c)·k² + 4/3·k³ (LAWN 41)."""
    a = args[0]
    mode = _arg(args, kwargs, 1, "mode", "reduced")
    m, n = a.shape[-2:]
    k = min(m, n)
    batch = a.numel() // max(m * n, 1)
    flops = 2 * max(m, n) * k * k - 2 / 3 * k**3
    if mode != "r":
        cols = m if mode == "complete" else k
        flops += 4 * m * cols * k - 2 * (m + cols) * k * k + 4 / 3 * k**3
    return round(batch * flops * _complex_mac(a))


def _geqrf(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    return _qr((args[0], "r"), {}, out)


def _shapes(x: Any) -> Any:
    """Tensors (at the top level or in a list or tuple) replaced by their shapes."""
    if isinstance(x, Tensor):
        return x.shape
    if isinstance(x, (list, tuple)):
        return type(x)(v.shape if isinstance(v, Tensor) else v for v in x)
    return x


def _torch_formula(formula: Callable[..., int]) -> Rule:
    """torch's own formula (2 per MAC), ×4 on complex dtypes (8 FLOPs per complex MAC).

    The registry wraps most formulas to map tensors to shapes with a full pytree traversal,
    which costs more than the operator itself on small tensors; the unwrapped formula
    (``__wrapped__``) gets the shapes from :func:`_shapes` instead (aten's arguments nest one
    level at most).
    """
    raw = getattr(formula, "__wrapped__", None)

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        if raw is None:
            flops = formula(*args, **kwargs, out_val=out)
        else:
            shapes = {k: _shapes(v) for k, v in kwargs.items()}
            flops = raw(*(_shapes(a) for a in args), **shapes, out_shape=_shapes(out))
        return flops * _complex_mac(args[0]) if isinstance(args[0], Tensor) else flops

    return rule


# --------------------------------------------------------------------------------- optimizers
def _fused_adam(decoupled: bool) -> Rule:
    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        per = 22 + kwargs.get("amsgrad", False)
        if kwargs.get("weight_decay", 0):
            per += 1 if decoupled else 2
        return per * sum(p.numel() for p in args[0])

    return rule


def _fused_sgd(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    per = 2 + 2 * bool(kwargs.get("weight_decay", 0))
    if kwargs.get("momentum", 0) and not kwargs.get("is_first_step", False):
        per += 3 + 2 * bool(kwargs.get("nesterov", False))
    return per * sum(p.numel() for p in args[0])


def _foreach(base: str) -> Rule:
    """``_foreach_<base>``: the base operator's cost per element, summed over the list."""
    costs = _FOREACH_COSTS.get(base)
    if costs is None:
        return _free if base in _ZERO_NAMES else _unknown(f"aten._foreach_{base}")
    per_in, per_out = costs

    def rule(args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
        tensors = _tensors(args[0] if not isinstance(args[0], (int, float)) else args[1])
        if not tensors:
            return 0
        alpha = (kwargs.get("alpha", 1) != 1) * (base in ("add", "sub"))
        total = sum(t.numel() for t in tensors)
        return _kind(tensors[0]) * ((per_in + alpha) * total + per_out * len(tensors))

    return rule


# ------------------------------------------------------------------------------ the table
def _words(text: str) -> list[str]:
    return text.split()


def _fn(per: int) -> Rule:
    """An elementwise function of ``per`` real FLOPs, ×4 on complex input."""
    return _pointwise(per, COMPLEX_FN * per)


_FUNCTIONS = _words(
    "exp exp2 expm1 log log2 log10 log1p sin cos tan asin acos atan atan2 arctan2 sinh cosh tanh "
    "asinh acosh atanh erf erfc erfinv lgamma digamma polygamma mvlgamma i0 sinc igamma igammac "
    "zeta"
)

_ZERO_NAMES = set(
    _words(
        "copy clone _to_copy contiguous cat stack index index_select gather masked_scatter "
        "masked_select fill zero zeros_like ones_like empty_like full_like rand_like randn_like "
        "randint_like normal uniform bernoulli poisson exponential random multinomial detach "
        "alias lift_fresh lift_fresh_copy _local_scalar_dense repeat roll flip constant_pad_nd "
        "slice_backward select_backward as_strided_scatter slice_scatter select_scatter "
        "diagonal_scatter diag_embed diagonal_backward tril triu nonzero embedding _unsafe_view "
        "_reshape_alias new_zeros new_empty new_ones new_full new_empty_strided resize set "
        "complex _linalg_check_errors _assert_async lu_unpack masked_fill where scalar_tensor "
        "_conj _conj_physical conj_physical _neg_view positive view_as_real view_as_complex real "
        "imag _unsafe_index unfold_backward expand_backward _copy_from _copy_from_and_resize "
        "_pin_memory index_fill one_hot linspace logspace arange eye squeeze unsqueeze "
        "transpose t swapdims as_strided"
    )
)

_RULE_BY_NAME: dict[str, Rule] = {
    **{name: _free for name in _ZERO_NAMES},
    **{name: _fn(FN) for name in _FUNCTIONS},
    # arithmetic
    "add": _with_alpha,
    "sub": _with_alpha,
    "rsub": _with_alpha,
    "neg": _pointwise(ADD, 2 * ADD),
    "mul": _binary(ADD, 6, 2),
    "div": _binary(DIV, 17, 2 * DIV),
    "true_divide": _binary(DIV, 17, 2 * DIV),
    "floor_divide": _pointwise(DIV + ADD, DIV + ADD),
    "remainder": _pointwise(DIV + 3 * ADD, DIV + 3 * ADD),
    "fmod": _pointwise(DIV + 3 * ADD, DIV + 3 * ADD),
    "reciprocal": _pointwise(DIV, 3 * ADD + 2 * DIV),
    "square": _pointwise(ADD, 6),
    "sqrt": _fn(DIV),
    "rsqrt": _fn(2 * DIV),
    "pow": _pow,
    "float_power": _pow,
    "abs": _pointwise(ADD, 3 * ADD + DIV),
    "sgn": _pointwise(ADD, 3 * ADD + 3 * DIV),
    "angle": _pointwise(ADD, FN),
    "polar": _pointwise(2 * FN + 2 * ADD, 0),  # r·cos θ, r·sin θ from real r, θ
    "clamp": _clamp,
    "clip": _clamp,
    "hardtanh": _pointwise(2 * ADD, 2 * ADD),
    "relu6": _pointwise(2 * ADD, 2 * ADD),
    "leaky_relu": _pointwise(2 * ADD, 2 * ADD),
    "frac": _pointwise(2 * ADD, 2 * ADD),
    "nan_to_num": _pointwise(3 * ADD, 6 * ADD),
    "hypot": _pointwise(3 * ADD + DIV, 3 * ADD + DIV),
    "logaddexp": _pointwise(4 * ADD + 2 * FN, 4 * ADD + 2 * FN),
    "logaddexp2": _pointwise(4 * ADD + 2 * FN, 4 * ADD + 2 * FN),
    "xlogy": _pointwise(ADD + FN, ADD + FN),
    "special_xlog1py": _pointwise(ADD + FN, ADD + FN),
    "special_entr": _pointwise(ADD + FN, ADD + FN),
    "lerp": _pointwise(3 * ADD, 10),
    "addcmul": _pointwise(3 * ADD, 10),
    "addcdiv": _pointwise(2 * ADD + DIV, 21),
    # activations and their backward operators
    "sigmoid": _fn(FN + ADD + DIV),
    "logit": _pointwise(ADD + DIV + FN, ADD + DIV + FN),
    "silu": _pointwise(FN + 2 * ADD + DIV, FN + 2 * ADD + DIV),
    "softplus": _pointwise(2 * ADD + 2 * FN + DIV, 0),  # test, βx, exp, log1p, ÷β
    "mish": _pointwise(3 * FN + 1, 3 * FN + 1),
    "elu": _pointwise(FN + 4 * ADD, FN + 4 * ADD),
    "gelu": _gelu(backward=False),
    "hardsigmoid": _pointwise(4 * ADD, 4 * ADD),
    "hardswish": _pointwise(5 * ADD, 5 * ADD),
    "glu": _pointwise(FN + 2 * ADD + DIV, FN + 2 * ADD + DIV),
    "softshrink": _pointwise(3 * ADD, 3 * ADD),
    "hardshrink": _pointwise(2 * ADD, 2 * ADD),
    "_prelu_kernel": _pointwise(2 * ADD, 2 * ADD),
    "log_sigmoid_forward": _scaled(2 * FN + 2 * ADD),
    "sigmoid_backward": _pointwise(3 * ADD, 3 * 6),
    "tanh_backward": _pointwise(3 * ADD, 3 * 6),
    "threshold_backward": _pointwise(ADD, ADD),
    "leaky_relu_backward": _pointwise(2 * ADD, 2 * ADD),
    "hardtanh_backward": _pointwise(2 * ADD, 2 * ADD),
    "hardshrink_backward": _pointwise(ADD, ADD),
    "softshrink_backward": _pointwise(2 * ADD, 2 * ADD),
    "hardsigmoid_backward": _pointwise(3 * ADD, 3 * ADD),
    "hardswish_backward": _pointwise(5 * ADD, 5 * ADD),
    "logit_backward": _pointwise(2 * ADD + DIV, 2 * ADD + DIV),
    "silu_backward": _pointwise(FN + 6 * ADD + DIV, FN + 6 * ADD + DIV),
    "softplus_backward": _pointwise(FN + 4 * ADD + DIV, FN + 4 * ADD + DIV),
    "mish_backward": _pointwise(4 * FN + 10 * ADD, 4 * FN + 10 * ADD),
    "elu_backward": _pointwise(FN + 4 * ADD, FN + 4 * ADD),
    "gelu_backward": _gelu(backward=True),
    "glu_backward": _scaled(FN + 5 * ADD + DIV),
    "_prelu_kernel_backward": _scaled(3 * ADD),
    "log_sigmoid_backward": _scaled(FN + 4 * ADD + DIV),
    "native_dropout": _dropout,
    "native_dropout_backward": _pointwise(2 * ADD, 2 * ADD),
    # reductions: per input element (+ per output element)
    **{name: _reduction(ADD) for name in _words("sum nansum prod amax amin argmax argmin")},
    **{name: _reduction(ADD) for name in _words("all any count_nonzero cumsum cumprod")},
    **{name: _reduction(ADD) for name in _words("cummax cummin median nanmedian kthvalue")},
    "max": _max_min,
    "min": _max_min,
    "aminmax": _reduction(2 * ADD),
    "mean": _reduction(ADD, DIV),
    "var": _reduction(4 * ADD, 2 * DIV),
    "var_mean": _reduction(4 * ADD, 2 * DIV),
    "std": _reduction(4 * ADD, 3 * DIV),
    "std_mean": _reduction(4 * ADD, 3 * DIV),
    "logsumexp": _reduction(3 * ADD + FN, ADD + FN),
    "linalg_vector_norm": _vector_norm,
    "norm": _vector_norm,
    "_softmax": _softmax(3 * ADD + FN + DIV, 0),
    "_safe_softmax": _softmax(3 * ADD + FN + DIV, 0),
    "_log_softmax": _softmax(4 * ADD + FN, FN),
    "_softmax_backward_data": _scaled(4 * ADD),
    "_log_softmax_backward_data": _scaled(3 * ADD + FN),
    "sort": _sort,
    "topk": _topk,
    "_euclidean_dist": _euclidean_dist,
    "_cdist_forward": _pairwise(x_index=0, p_index=2, dist_index=None),
    "_cdist_backward": _pairwise(x_index=1, p_index=3, dist_index=4),
    "_pdist_forward": _pairwise(x_index=0, p_index=1, dist_index=None),
    "_pdist_backward": _pairwise(x_index=1, p_index=2, dist_index=3),
    # normalisation
    "native_layer_norm": _layer_norm,
    "native_group_norm": _group_norm,
    "native_batch_norm": _batch_norm,
    "_native_batch_norm_legit": _batch_norm,
    "_native_batch_norm_legit_no_training": _batch_norm,
    "native_layer_norm_backward": _norm_backward(mask_index=7),
    "native_batch_norm_backward": _norm_backward(mask_index=9),
    "native_group_norm_backward": _norm_backward(mask_index=9),
    # losses
    "mse_loss": _loss(2 * ADD, reduction_index=2),
    "mse_loss_backward": _scaled(3 * ADD),
    "binary_cross_entropy": _loss(2 * FN + 7 * ADD, reduction_index=3),
    "binary_cross_entropy_backward": _scaled(5 * ADD + DIV),
    "binary_cross_entropy_with_logits": _loss(2 * FN + 6 * ADD, reduction_index=4),
    "smooth_l1_loss": _loss(6 * ADD + DIV, reduction_index=2),
    "smooth_l1_loss_backward": _scaled(5 * ADD + DIV),
    "huber_loss": _loss(6 * ADD + DIV, reduction_index=2),
    "huber_loss_backward": _scaled(5 * ADD + DIV),
    "nll_loss_forward": _nll(weight_index=2, per_weight=2),
    "nll_loss2d_forward": _nll(weight_index=2, per_weight=2),
    "nll_loss_backward": _nll(weight_index=3, per_weight=1),
    "nll_loss2d_backward": _nll(weight_index=3, per_weight=1),
    # accumulating writes
    "index_add": _source(3),
    "scatter_add": _source(3),
    "scatter_reduce": _source(3),
    "scatter": _scatter,
    "index_put": _index_put,
    "_index_put_impl": _index_put,
    "embedding_dense_backward": _source(0),
    # FFTs
    "_fft_c2c": _fft(5, 2, real_input=False),
    "_fft_r2c": _fft(2.5, 2, real_input=True),
    "_fft_c2r": _fft(2.5, 1, real_input=False),
    # linear algebra
    "_linalg_solve_ex": _solve,
    "linalg_solve_ex": _solve,
    "linalg_solve": _solve,
    "linalg_inv_ex": _solve,
    "linalg_inv": _solve,
    "linalg_lu_factor_ex": _lu,
    "linalg_lu_factor": _lu,
    "linalg_lu": _lu,
    "lu_factor": _lu,
    "_linalg_det": _lu,
    "_linalg_slogdet": _lu,
    "linalg_lu_solve": _triangular(2, a_index=0),
    "lu_solve": _triangular(2, a_index=1),
    "cholesky_solve": _triangular(2, a_index=1),
    "linalg_solve_triangular": _triangular(1, a_index=0),
    "triangular_solve": _triangular(1, a_index=1),
    "linalg_cholesky_ex": _cholesky,
    "cholesky": _cholesky,
    "geqrf": _geqrf,
    "linalg_qr": _qr,
    # optimizers' fused steps
    "_fused_adam": _fused_adam(decoupled=False),
    "_fused_adamw": _fused_adam(decoupled=True),
    "_fused_sgd": _fused_sgd,
}

#: ``_foreach_<base>``: (per element, per tensor) of the base operator.
_FOREACH_COSTS: dict[str, tuple[int, int]] = {
    **{name: (ADD, 0) for name in _words("add sub mul neg abs sign maximum minimum clamp_min")},
    **{name: (ADD, 0) for name in _words("clamp_max round floor ceil trunc frac max")},
    **{name: (DIV, 0) for name in _words("div reciprocal sqrt")},
    **{name: (FN, 0) for name in [*_FUNCTIONS, "pow", "sigmoid"]},
    "rsqrt": (2 * DIV, 0),
    "lerp": (3 * ADD, 0),
    "addcmul": (3 * ADD, 0),
    "addcdiv": (2 * ADD + DIV, 0),
    "norm": (2 * ADD, DIV),
}

_RULES: dict[OpOverload, tuple[Rule, str]] = {}
_LINALG = {"geqrf", "orgqr", "triangular_solve", "cholesky", "cholesky_solve", "cholesky_inverse"}


def _work_kind(op: OpOverload) -> str:
    """Which of :data:`KINDS` an operator's work is."""
    name = op._opname
    if getattr(torch.ops.aten, name.rstrip("_"), None) in _torch_registry():
        return "matmul"
    if name.startswith("_fft"):
        return "fft"
    if "norm" in name:  # vector and matrix norms: reductions
        return "elementwise"
    if name.startswith(("linalg_", "_linalg_")) or name.rstrip("_") in _LINALG:
        return "linalg"
    return "elementwise"


_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd


def _unknown(name: str) -> Rule:
    _log.warning("no FLOP formula for %s; it counts 0", name)
    return _free


def _takes_tensors(op: OpOverload) -> bool:
    return any("Tensor" in str(a.type) for a in op._schema.arguments)


def _has_decomposition(op: OpOverload) -> bool:
    """Whether ``op.decompose`` has a CompositeImplicitAutograd kernel to run."""
    return _COMPOSITE in op.py_kernels or torch._C._dispatch_has_kernel_for_dispatch_key(
        op.name(), _COMPOSITE
    )


def _classify(op: OpOverload) -> Rule:
    """The rule for ``op``, decided once per operator overload (see the module table)."""
    if op.namespace != "aten":
        return _free if op.namespace == "profiler" else _unknown(str(op))
    name = op._opname
    base = name[:-1] if name.endswith("_") and not name.endswith("__") else name
    if base.startswith("_foreach_"):
        return _foreach(base.removeprefix("_foreach_"))
    if base in _RULE_BY_NAME:
        return _RULE_BY_NAME[base]
    packet = getattr(torch.ops.aten, base, None)
    if packet in _torch_registry():
        return _torch_formula(_torch_registry()[packet])
    if _has_decomposition(op):
        return _decompose
    tags = op.tags
    if op.is_view or torch.Tag.view_copy in tags or not _takes_tensors(op):
        return _free
    if torch.Tag.nondeterministic_seeded in tags:  # random numbers: data, not arithmetic
        return _free
    if torch.Tag.pointwise in tags:
        return _pointwise(ADD, 2 * ADD)
    if torch.Tag.reduction in tags:
        return _reduction(ADD)
    return _unknown(str(op))
