"""The op spec registry: one row per fusedact op.

The rows drive the docstrings of `fusedact.functional`, the modules of `fusedact.nn`, the
tests and the benchmarks, so a new activation is described here exactly once.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class OpSpec:
    name: str
    # "unary": y = f(x) elementwise; "gated": out = act(gate) * up on two halves of `dim`;
    # "weighted": y = f(x, weight) with a learned per-channel (or single) weight;
    # "random": rrelu, whose training mode draws its slopes from torch's generator;
    # "rowwise": y = f(x) normalized over the rows along a required `dim` (softmax,
    # log_softmax, softmin): every output element depends on its whole row, so the op is
    # not elementwise; X(input, dim, dtype=None), X_backward(grad_output, output, dim).
    kind: str
    # The torch composition we must match. Unary and rowwise: reference(x, **params).
    # Gated: reference(gate, up, **params) with gate/up already split.
    reference: Callable[..., torch.Tensor]
    doc: str
    # Keyword parameters and their defaults, in schema order (the gated `dim` is not listed;
    # the rowwise `dim` is, as a required parameter with a sample value).
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # Parameter sets every test and benchmark sweeps (always includes the defaults).
    param_sets: Tuple[Dict[str, Any], ...] = ({},)
    # torch.nn has an inplace= flag for the module, so fusedact registers `name_`.
    inplace: bool = False
    # Points where the derivative is not smooth (gradcheck samples stay away from them):
    # a tuple, or a function of the parameter set for kinks that move with parameters.
    kinks: Any = ()
    # Gated ops only: which half carries the activation ("first" except torch's glu).
    gated_half: str = "first"
    # Name of the fusedact.nn module (torch.nn's name where torch has the module).
    module: str = ""
    # Parameters without a default in torch (listed in `params` with sample values only).
    required_params: Tuple[str, ...] = ()
    # X_backward takes the forward output instead of the input (as torch's tanh_backward).
    grad_from_output: bool = False
    # The in-place op's backward takes its result, through X_result_backward and
    # X_result_double_backward, as torch's leaky_relu_ and elu_ do (X_backward takes the input).
    inplace_grad_from_result: bool = False
    # The torch reference is a composition of several ops (no single torch kernel), which
    # in float16/bfloat16 rounds its intermediates; fusedact rounds once.
    composite: bool = False

    def kinks_at(self, params: Dict[str, Any]) -> Tuple[float, ...]:
        return tuple(self.kinks(**{**self.params, **params})) if callable(self.kinks) else self.kinks

    @property
    def op(self):
        return getattr(torch.ops.fusedact, self.name)

    @property
    def backward_op(self):
        return getattr(torch.ops.fusedact, self.name + "_backward")


def _gelu_ref(x, approximate="none"):
    return F.gelu(x, approximate=approximate)


OPS: List[OpSpec] = [
    OpSpec(
        name="gelu",
        module="GELU",
        kind="unary",
        reference=_gelu_ref,
        doc="GELU: x * Phi(x) (approximate='none') or the tanh form "
        "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (approximate='tanh').",
        params={"approximate": "none"},
        param_sets=({"approximate": "none"}, {"approximate": "tanh"}),
    ),
    OpSpec(
        name="silu",
        module="SiLU",
        kind="unary",
        reference=lambda x: F.silu(x),
        doc="SiLU (swish-1): x * sigmoid(x).",
        inplace=True,
    ),
    OpSpec(
        name="mish",
        module="Mish",
        kind="unary",
        reference=lambda x: F.mish(x),
        doc="Mish: x * tanh(softplus(x)).",
        inplace=True,
    ),
    OpSpec(
        name="relu",
        module="ReLU",
        kind="unary",
        reference=lambda x: F.relu(x),
        doc="ReLU: max(x, 0).",
        inplace=True,
        grad_from_output=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="relu6",
        module="ReLU6",
        kind="unary",
        reference=lambda x: F.relu6(x),
        doc="ReLU6: min(max(x, 0), 6).",
        inplace=True,
        kinks=(0.0, 6.0),
    ),
    OpSpec(
        name="leaky_relu",
        module="LeakyReLU",
        kind="unary",
        reference=lambda x, negative_slope=0.01: F.leaky_relu(x, negative_slope),
        doc="LeakyReLU: x for x > 0, negative_slope * x otherwise.",
        params={"negative_slope": 0.01},
        param_sets=({"negative_slope": 0.01}, {"negative_slope": 0.2}, {"negative_slope": -0.5}),
        inplace=True,
        inplace_grad_from_result=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="elu",
        module="ELU",
        kind="unary",
        reference=lambda x, alpha=1.0: F.elu(x, alpha),
        doc="ELU: x for x > 0, alpha * (exp(x) - 1) otherwise.",
        params={"alpha": 1.0},
        param_sets=({"alpha": 1.0}, {"alpha": 0.8}, {"alpha": 2.5}),
        inplace=True,
        inplace_grad_from_result=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="selu",
        module="SELU",
        kind="unary",
        reference=lambda x: F.selu(x),
        doc="SELU: scale * (x for x > 0, alpha * (exp(x) - 1) otherwise), the self-normalizing constants.",
        inplace=True,
        inplace_grad_from_result=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="celu",
        module="CELU",
        kind="unary",
        reference=lambda x, alpha=1.0: F.celu(x, alpha),
        doc="CELU: x for x > 0, alpha * (exp(x / alpha) - 1) otherwise.",
        params={"alpha": 1.0},
        param_sets=({"alpha": 1.0}, {"alpha": 0.8}, {"alpha": 2.5}),
        inplace=True,
        inplace_grad_from_result=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="softplus",
        module="Softplus",
        kind="unary",
        reference=lambda x, beta=1.0, threshold=20.0: F.softplus(x, beta, threshold),
        doc="Softplus: log(1 + exp(beta * x)) / beta, x itself once beta * x > threshold.",
        params={"beta": 1.0, "threshold": 20.0},
        param_sets=(
            {"beta": 1.0, "threshold": 20.0},
            {"beta": 2.0, "threshold": 20.0},
            {"beta": 0.5, "threshold": 5.0},
        ),
        kinks=lambda beta, threshold: (threshold / beta,),
    ),
    OpSpec(
        name="sigmoid",
        module="Sigmoid",
        kind="unary",
        reference=lambda x: torch.sigmoid(x),
        doc="Sigmoid: 1 / (1 + exp(-x)).",
        grad_from_output=True,
    ),
    OpSpec(
        name="tanh",
        module="Tanh",
        kind="unary",
        reference=lambda x: torch.tanh(x),
        doc="Tanh: tanh(x).",
        grad_from_output=True,
    ),
    OpSpec(
        name="hardsigmoid",
        module="Hardsigmoid",
        kind="unary",
        reference=lambda x: F.hardsigmoid(x),
        doc="Hardsigmoid: min(max(x + 3, 0), 6) / 6.",
        inplace=True,
        kinks=(-3.0, 3.0),
    ),
    OpSpec(
        name="hardswish",
        module="Hardswish",
        kind="unary",
        reference=lambda x: F.hardswish(x),
        doc="Hardswish: x * min(max(x + 3, 0), 6) / 6.",
        inplace=True,
        kinks=(-3.0, 3.0),
    ),
    OpSpec(
        name="hardtanh",
        module="Hardtanh",
        kind="unary",
        reference=lambda x, min_val=-1.0, max_val=1.0: F.hardtanh(x, min_val, max_val),
        doc="Hardtanh: x clamped to [min_val, max_val].",
        params={"min_val": -1.0, "max_val": 1.0},
        param_sets=(
            {"min_val": -1.0, "max_val": 1.0},
            {"min_val": 0.0, "max_val": 6.0},
            {"min_val": -2.5, "max_val": 0.5},
        ),
        inplace=True,
        kinks=lambda min_val, max_val: (min_val, max_val),
    ),
    OpSpec(
        name="softsign",
        module="Softsign",
        kind="unary",
        reference=lambda x: F.softsign(x),
        doc="Softsign: x / (1 + |x|).",
        kinks=(0.0,),
        composite=True,
    ),
    OpSpec(
        name="logsigmoid",
        module="LogSigmoid",
        kind="unary",
        reference=lambda x: F.logsigmoid(x),
        doc="LogSigmoid: log(1 / (1 + exp(-x))).",
    ),
    OpSpec(
        name="tanhshrink",
        module="Tanhshrink",
        kind="unary",
        reference=lambda x: F.tanhshrink(x),
        doc="Tanhshrink: x - tanh(x).",
        composite=True,
    ),
    OpSpec(
        name="hardshrink",
        module="Hardshrink",
        kind="unary",
        reference=lambda x, lambd=0.5: F.hardshrink(x, lambd),
        doc="Hardshrink: 0 on [-lambd, lambd], x elsewhere.",
        params={"lambd": 0.5},
        param_sets=({"lambd": 0.5}, {"lambd": 1.5}),
        kinks=lambda lambd: (-lambd, lambd),
    ),
    OpSpec(
        name="softshrink",
        module="Softshrink",
        kind="unary",
        reference=lambda x, lambd=0.5: F.softshrink(x, lambd),
        doc="Softshrink: x - lambd above lambd, x + lambd below -lambd, 0 between.",
        params={"lambd": 0.5},
        param_sets=({"lambd": 0.5}, {"lambd": 1.5}),
        kinks=lambda lambd: (-lambd, lambd),
    ),
    OpSpec(
        name="threshold",
        module="Threshold",
        kind="unary",
        reference=lambda x, threshold, value: F.threshold(x, threshold, value),
        doc="Threshold: value where x <= threshold, x elsewhere.",
        params={"threshold": 0.5, "value": -2.0},
        required_params=("threshold", "value"),
        param_sets=({"threshold": 0.5, "value": -2.0}, {"threshold": 0.0, "value": 0.0}),
        inplace=True,
        kinks=lambda threshold, value: (threshold,),
    ),
    OpSpec(
        name="swish",
        module="Swish",
        kind="unary",
        reference=lambda x, beta=1.0: x * torch.sigmoid(beta * x),
        doc="Swish: x * sigmoid(beta * x).",
        params={"beta": 1.0},
        param_sets=({"beta": 1.0}, {"beta": 0.5}, {"beta": 2.0}),
        composite=True,
    ),
    OpSpec(
        name="quick_gelu",
        module="QuickGELU",
        kind="unary",
        reference=lambda x: x * torch.sigmoid(1.702 * x),
        doc="QuickGELU: x * sigmoid(1.702 * x).",
        composite=True,
    ),
    OpSpec(
        name="relu_squared",
        module="ReLUSquared",
        kind="unary",
        reference=lambda x: torch.square(F.relu(x)),
        doc="ReLU squared: relu(x)^2.",
        kinks=(0.0,),
        composite=True,
    ),
    OpSpec(
        name="prelu",
        module="PReLU",
        kind="weighted",
        reference=lambda x, weight: F.prelu(x, weight),
        doc="PReLU: x for x > 0, weight * x otherwise, one weight per channel (dim 1) or one for all.",
        kinks=(0.0,),
    ),
    OpSpec(
        name="learnable_swish",
        kind="weighted",
        reference=lambda x, weight: x * torch.sigmoid(weight * x),
        doc="Swish with a learned beta: x * sigmoid(weight * x), one weight or one per channel "
        "(dim 1); fusedact.nn.Swish(learnable=True) holds it as the parameter `beta`.",
    ),
    OpSpec(
        name="rrelu",
        module="RReLU",
        kind="random",
        reference=lambda x, lower=1.0 / 8, upper=1.0 / 3: F.rrelu(x, lower, upper, training=False),
        doc="RReLU: leaky_relu with slope (lower + upper) / 2 in evaluation; in training, a slope "
        "per element drawn uniformly from [lower, upper].",
        params={"lower": 1.0 / 8, "upper": 1.0 / 3},
        param_sets=({"lower": 1.0 / 8, "upper": 1.0 / 3}, {"lower": 0.1, "upper": 0.6}),
        inplace=True,
        kinks=(0.0,),
    ),
    OpSpec(
        name="softmax",
        module="Softmax",
        kind="rowwise",
        reference=lambda x, dim, dtype=None: F.softmax(x, dim=dim, dtype=dtype),
        doc="Softmax over `dim`: exp(x_i) / sum_j exp(x_j), each row of `dim` summing to 1.",
        params={"dim": -1, "dtype": None},
        required_params=("dim",),
        param_sets=({"dim": -1}, {"dim": 0}, {"dim": -1, "dtype": torch.float64}),
        grad_from_output=True,
    ),
    OpSpec(
        name="log_softmax",
        module="LogSoftmax",
        kind="rowwise",
        reference=lambda x, dim, dtype=None: F.log_softmax(x, dim=dim, dtype=dtype),
        doc="LogSoftmax over `dim`: x_i - log(sum_j exp(x_j)).",
        params={"dim": -1, "dtype": None},
        required_params=("dim",),
        param_sets=({"dim": -1}, {"dim": 0}, {"dim": -1, "dtype": torch.float64}),
        grad_from_output=True,
    ),
    OpSpec(
        name="softmin",
        module="Softmin",
        kind="rowwise",
        reference=lambda x, dim, dtype=None: F.softmin(x, dim=dim, dtype=dtype),
        doc="Softmin over `dim`: softmax(-x) = exp(-x_i) / sum_j exp(-x_j), each row of `dim` summing to 1.",
        params={"dim": -1, "dtype": None},
        required_params=("dim",),
        param_sets=({"dim": -1}, {"dim": 0}, {"dim": -1, "dtype": torch.float64}),
        grad_from_output=True,
    ),
    OpSpec(
        name="glu",
        module="GLU",
        kind="gated",
        reference=lambda gate, up: up * torch.sigmoid(gate),
        doc="GLU, torch's convention: first half * sigmoid(second half).",
        gated_half="second",
        composite=True,
    ),
    OpSpec(
        name="swiglu",
        module="SwiGLU",
        kind="gated",
        reference=lambda gate, up: F.silu(gate) * up,
        doc="SwiGLU: silu(first half) * second half (Llama packed gate_up convention).",
        composite=True,
    ),
    OpSpec(
        name="geglu",
        module="GeGLU",
        kind="gated",
        reference=lambda gate, up, approximate="none": F.gelu(gate, approximate=approximate) * up,
        doc="GeGLU: gelu(first half, approximate) * second half.",
        params={"approximate": "none"},
        param_sets=({"approximate": "none"}, {"approximate": "tanh"}),
        composite=True,
    ),
    OpSpec(
        name="reglu",
        module="ReGLU",
        kind="gated",
        reference=lambda gate, up: F.relu(gate) * up,
        doc="ReGLU: relu(first half) * second half.",
        kinks=(0.0,),
        composite=True,
    ),
]

BY_NAME: Dict[str, OpSpec] = {spec.name: spec for spec in OPS}


def get(name: str) -> OpSpec:
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"fusedact: no op named {name!r}; known: {sorted(BY_NAME)}") from None


def split_halves(spec: OpSpec, x: torch.Tensor, dim: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
    """(gate, up) views of a packed gated input, following the op's convention."""
    first, second = x.chunk(2, dim=dim)
    return (first, second) if spec.gated_half == "first" else (second, first)


def reference(spec: OpSpec, x: torch.Tensor, dim: int = -1, **params) -> torch.Tensor:
    """The torch composition a packed fusedact call must match (`dim`: the gated or
    rowwise dim; other kinds have none)."""
    if spec.kind == "gated":
        gate, up = split_halves(spec, x, dim)
        return spec.reference(gate, up, **params)
    if spec.kind == "rowwise":
        return spec.reference(x, dim=dim, **params)
    return spec.reference(x, **params)


def call(spec: OpSpec, x: torch.Tensor, dim: Optional[int] = None, **params) -> torch.Tensor:
    """Call the packed fusedact op with keyword parameters (dim only for gated and
    rowwise ops, default -1: `call(spec, x, **spec.params)` passes the registry's sample)."""
    if spec.kind in ("gated", "rowwise"):
        return spec.op(x, **params, dim=-1 if dim is None else dim)
    return spec.op(x, **params)


# The op names derived from each row X (DESIGN.md section 2): the op, its in-place form,
# its backward ops and those of its in-place form, rrelu's noise ops.
DERIVED_SUFFIXES = (
    "",
    "_",
    "_backward",
    "_double_backward",
    "_result_backward",
    "_result_double_backward",
    "_with_noise",
    "_with_noise_backward",
)


def overloads(spec: OpSpec):
    """Every OpOverload the extension registers for this row (X, X.split, X_, X_backward, ...)."""
    namespace = torch.ops.fusedact
    for suffix in DERIVED_SUFFIXES:
        if not hasattr(namespace, spec.name + suffix):
            continue
        packet = getattr(namespace, spec.name + suffix)
        for overload_name in packet.overloads():
            yield getattr(packet, overload_name)
