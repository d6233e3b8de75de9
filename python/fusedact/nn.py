"""Modules mirroring torch.nn, generated from the op registry.

`fusedact.nn.<Module>(**same kwargs as torch.nn.<Module>)` stores its arguments under
torch's attribute names (so reprs and attribute access match) and calls the fusedact op.
SwiGLU, GeGLU, ReGLU, Swish, QuickGELU and ReLUSquared have no torch.nn counterpart;
PReLU, which owns a parameter, is written out by hand. The row-wise modules (Softmax,
LogSoftmax, Softmin) take `dim` only, as torch.nn's (dim=None: torch's deprecated implicit dim).
"""

import inspect
from typing import Optional

import torch

from . import functional as FA
from .registry import OPS, OpSpec


def _module(spec: OpSpec):
    fn = getattr(FA, spec.name)
    # The module takes the functional's arguments except the tensor.
    init_params = list(inspect.signature(fn).parameters.values())[1:]
    init_signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)] + init_params
    )
    names = [p.name for p in init_params]

    def __init__(self, *args, **kwargs):
        torch.nn.Module.__init__(self)
        bound = init_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        for name in names:
            setattr(self, name, bound.arguments[name])

    def forward(self, input):
        return fn(input, **{name: getattr(self, name) for name in names})

    def extra_repr(self):
        parts = [f"{n}={getattr(self, n)!r}" for n in names if n != "inplace"]
        if getattr(self, "inplace", False):
            parts.append("inplace=True")
        return ", ".join(parts)

    # Where torch has the module, its own extra_repr reads the same attribute names, so
    # the reprs are identical (e.g. "Hardshrink(0.5)", "ReLU6(inplace=True)").
    torch_module = getattr(torch.nn, spec.module, None)
    if isinstance(torch_module, type) and issubclass(torch_module, torch.nn.Module):
        extra_repr = torch_module.extra_repr

    __init__.__signature__ = init_signature
    return type(
        spec.module,
        (torch.nn.Module,),
        {
            "__init__": __init__,
            "forward": forward,
            "extra_repr": extra_repr,
            "__doc__": f"{spec.doc}\n\nfusedact counterpart of torch.nn.{spec.module}.",
            "__module__": __name__,
        },
    )


class _Rowwise(torch.nn.Module):
    """torch.nn.Softmax / LogSoftmax / Softmin's interface: `dim` (None: torch's deprecated
    implicit dim, with its warning), extra_repr 'dim=...', and a __setstate__ giving old
    pickles without `dim` dim=None, as torch's modules do. Written out (forward names its
    fusedact.functional function) so that TorchScript compiles them, as torch.nn's."""

    __constants__ = ["dim"]
    dim: Optional[int]

    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def __setstate__(self, state):
        super().__setstate__(state)
        if not hasattr(self, "dim"):
            self.dim = None

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# forward: _stacklevel=5 as torch.nn.Softmax's, so the implicit-dim warning points at the same
# frame as torch's.


class Softmax(_Rowwise):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.softmax(input, self.dim, _stacklevel=5)


class LogSoftmax(_Rowwise):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.log_softmax(input, self.dim, _stacklevel=5)


class Softmin(_Rowwise):
    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.softmin(input, self.dim, _stacklevel=5)


_ROWWISE = {"Softmax": Softmax, "LogSoftmax": LogSoftmax, "Softmin": Softmin}


def _rowwise_module(spec: OpSpec):
    cls = _ROWWISE[spec.module]
    cls.__doc__ = f"{spec.doc}\n\nfusedact counterpart of torch.nn.{spec.module}(dim=None)."
    return cls


class PReLU(torch.nn.Module):
    """fusedact counterpart of torch.nn.PReLU: x for x > 0, weight * x otherwise, with a
    learnable weight of `num_parameters` elements (1, or the number of channels) initialized
    to `init`. Same parameter name (`weight`), so torch.nn.PReLU state_dicts load as they are."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None) -> None:
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = torch.nn.Parameter(torch.empty(num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.constant_(self.weight, self.init)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.prelu(input, self.weight)

    extra_repr = torch.nn.PReLU.extra_repr


class RReLU(torch.nn.Module):
    """fusedact counterpart of torch.nn.RReLU: random slopes in [lower, upper] while
    training, slope (lower + upper) / 2 in eval mode."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False) -> None:
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.inplace = inplace

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return FA.rrelu(input, self.lower, self.upper, self.training, self.inplace)

    extra_repr = torch.nn.RReLU.extra_repr


class Swish(torch.nn.Module):
    """x * sigmoid(beta * x). With learnable=True, beta is a Parameter (state_dict key
    `beta`, one element) trained like any other; otherwise a float, as in Swish(beta)."""

    def __init__(self, beta: float = 1.0, learnable: bool = False) -> None:
        super().__init__()
        self.learnable = learnable
        if learnable:
            self.beta = torch.nn.Parameter(torch.tensor([float(beta)]))
        else:
            self.beta = beta

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if self.learnable:
            return FA.learnable_swish(input, self.beta.to(input.dtype))
        return FA.swish(input, self.beta)

    def extra_repr(self) -> str:
        beta = self.beta.item() if self.learnable else self.beta
        return f"beta={beta!r}, learnable=True" if self.learnable else f"beta={beta!r}"


_HANDWRITTEN = ("PReLU", "RReLU", "Swish")  # parameters, randomness, an optional parameter
__all__ = list(_HANDWRITTEN)
for _spec in OPS:
    if _spec.kind in ("weighted", "random") or _spec.module in _HANDWRITTEN:
        continue
    globals()[_spec.module] = _rowwise_module(_spec) if _spec.kind == "rowwise" else _module(_spec)
    __all__.append(_spec.module)
