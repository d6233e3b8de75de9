"""Functional interface mirroring torch.nn.functional (same names, arguments and defaults)."""

import torch

from .registry import BY_NAME

_ops = torch.ops.fusedact


def _doc(name: str):
    def attach(fn):
        fn.__doc__ = f"{BY_NAME[name].doc}\n\nfusedact counterpart of torch.nn.functional.{name}."
        return fn

    return attach


@_doc("gelu")
def gelu(input: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return _ops.gelu(input, approximate)


@_doc("silu")
def silu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    if inplace:
        _ops.silu_(input)
        return input
    return _ops.silu(input)


@_doc("mish")
def mish(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    if inplace:
        _ops.mish_(input)
        return input
    return _ops.mish(input)


@_doc("glu")
def glu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return _ops.glu(input, dim)


@_doc("swiglu")
def swiglu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return _ops.swiglu(input, dim)


@_doc("geglu")
def geglu(input: torch.Tensor, approximate: str = "none", dim: int = -1) -> torch.Tensor:
    return _ops.geglu(input, approximate, dim)


@_doc("reglu")
def reglu(input: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return _ops.reglu(input, dim)


def glu_split(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """up * sigmoid(gate) on two separate tensors (glu with its halves kept apart)."""
    return _ops.glu.split(gate, up)


def swiglu_split(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up on two separate tensors (gate_proj and up_proj kept apart)."""
    return _ops.swiglu.split(gate, up)


def geglu_split(gate: torch.Tensor, up: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """gelu(gate, approximate) * up on two separate tensors."""
    return _ops.geglu.split(gate, up, approximate)


def reglu_split(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """relu(gate) * up on two separate tensors."""
    return _ops.reglu.split(gate, up)
