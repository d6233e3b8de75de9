"""Modules mirroring torch.nn, generated from the op registry.

`fusedact.nn.<Module>(**same kwargs as torch.nn.<Module>)` stores its arguments under
torch's attribute names (so reprs and attribute access match) and calls the fusedact op.
SwiGLU, GeGLU, ReGLU, Swish, QuickGELU and ReLUSquared have no torch.nn counterpart.
"""

import inspect

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


__all__ = []
for _spec in OPS:
    globals()[_spec.module] = _module(_spec)
    __all__.append(_spec.module)
