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
    # "unary": y = f(x) elementwise; "gated": out = act(gate) * up on two halves of `dim`.
    kind: str
    # The torch composition we must match. Unary: reference(x, **params).
    # Gated: reference(gate, up, **params) with gate/up already split.
    reference: Callable[..., torch.Tensor]
    doc: str
    # Keyword parameters and their defaults, in schema order (the gated `dim` is not listed).
    params: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # Parameter sets every test and benchmark sweeps (always includes the defaults).
    param_sets: Tuple[Dict[str, Any], ...] = ({},)
    # torch.nn has an inplace= flag for the module, so fusedact registers `name_`.
    inplace: bool = False
    # Points where the derivative is not smooth; gradcheck samples stay this far away.
    kinks: Tuple[float, ...] = ()
    # Gated ops only: which half carries the activation ("first" except torch's glu).
    gated_half: str = "first"

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
        kind="unary",
        reference=_gelu_ref,
        doc="GELU: x * Phi(x) (approximate='none') or the tanh form "
        "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) (approximate='tanh').",
        params={"approximate": "none"},
        param_sets=({"approximate": "none"}, {"approximate": "tanh"}),
    ),
    OpSpec(
        name="silu",
        kind="unary",
        reference=lambda x: F.silu(x),
        doc="SiLU (swish-1): x * sigmoid(x).",
        inplace=True,
    ),
    OpSpec(
        name="mish",
        kind="unary",
        reference=lambda x: F.mish(x),
        doc="Mish: x * tanh(softplus(x)).",
        inplace=True,
    ),
    OpSpec(
        name="glu",
        kind="gated",
        reference=lambda gate, up: up * torch.sigmoid(gate),
        doc="GLU, torch's convention: first half * sigmoid(second half).",
        gated_half="second",
    ),
    OpSpec(
        name="swiglu",
        kind="gated",
        reference=lambda gate, up: F.silu(gate) * up,
        doc="SwiGLU: silu(first half) * second half (Llama packed gate_up convention).",
    ),
    OpSpec(
        name="geglu",
        kind="gated",
        reference=lambda gate, up, approximate="none": F.gelu(gate, approximate=approximate) * up,
        doc="GeGLU: gelu(first half, approximate) * second half.",
        params={"approximate": "none"},
        param_sets=({"approximate": "none"}, {"approximate": "tanh"}),
    ),
    OpSpec(
        name="reglu",
        kind="gated",
        reference=lambda gate, up: F.relu(gate) * up,
        doc="ReGLU: relu(first half) * second half.",
        kinks=(0.0,),
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
    """The torch composition a packed fusedact call must match."""
    if spec.kind == "gated":
        gate, up = split_halves(spec, x, dim)
        return spec.reference(gate, up, **params)
    return spec.reference(x, **params)


def call(spec: OpSpec, x: torch.Tensor, dim: Optional[int] = None, **params) -> torch.Tensor:
    """Call the packed fusedact op with keyword parameters (dim only for gated ops)."""
    if spec.kind == "gated":
        return spec.op(x, **params, dim=-1 if dim is None else dim)
    return spec.op(x, **params)
