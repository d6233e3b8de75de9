"""Modules mirroring torch.nn (same constructor arguments, no parameters, same repr)."""

import torch

from . import functional as FA


class GELU(torch.nn.Module):
    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class _InplaceActivation(torch.nn.Module):
    _fn = None

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return type(self)._fn(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SiLU(_InplaceActivation):
    _fn = staticmethod(FA.silu)


class Mish(_InplaceActivation):
    _fn = staticmethod(FA.mish)


class _Gated(torch.nn.Module):
    _fn = None

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return type(self)._fn(input, dim=self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class GLU(_Gated):
    """torch.nn.GLU: first half * sigmoid(second half) along `dim`."""

    _fn = staticmethod(FA.glu)


class SwiGLU(_Gated):
    """silu(first half) * second half along `dim`."""

    _fn = staticmethod(FA.swiglu)


class ReGLU(_Gated):
    """relu(first half) * second half along `dim`."""

    _fn = staticmethod(FA.reglu)


class GeGLU(torch.nn.Module):
    """gelu(first half, approximate) * second half along `dim`."""

    def __init__(self, approximate: str = "none", dim: int = -1) -> None:
        super().__init__()
        self.approximate = approximate
        self.dim = dim

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.geglu(input, approximate=self.approximate, dim=self.dim)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}, dim={self.dim}"


__all__ = ["GELU", "SiLU", "Mish", "GLU", "SwiGLU", "GeGLU", "ReGLU"]
