"""Functional interface mirroring torch.nn.functional, generated from the op registry.

Each unary op `f` is `f(input, <params in schema order, with torch's defaults>)`, plus
`inplace=False` where torch.nn.functional has it; each gated op `g` is
`g(input, <params>, dim=-1)` and `g_split(gate, up, <params>)` for separate tensors; each
weighted op `w` is `w(input, weight)`; each row-wise op `r` (softmax, log_softmax, softmin)
is `r(input, dim=None, _stacklevel=3, dtype=None)`, torch.nn.functional's signature, with its
deprecated implicit dim for dim=None.
"""

import inspect
import warnings
from typing import Optional

import torch

from . import _C
from ._after_import import call_after_import
from .registry import OPS, OpSpec

_ops = torch.ops.fusedact
_P = inspect.Parameter
_NO_DEFAULT = _P.empty


def _param(name, default=_NO_DEFAULT):
    return _P(name, _P.POSITIONAL_OR_KEYWORD, default=default)


def _signature(first, spec, extra=()):
    params = [_param(n) for n in first]
    params += [_param(k, v) for k, v in spec.params.items() if k not in spec.required_params]
    params += [_param(k) for k in spec.required_params]
    params += [_param(k, v) for k, v in extra]
    # Required parameters (threshold's) come first in torch's signature.
    required = [p for p in params if p.default is _NO_DEFAULT]
    return inspect.Signature(required + [p for p in params if p.default is not _NO_DEFAULT])


def _function(name, signature, body, env):
    """A plain Python function with this signature and body: binding arguments through
    inspect.Signature at every call would cost several microseconds."""
    defaults = {p.name: p.default for p in signature.parameters.values() if p.default is not _NO_DEFAULT}
    params = ", ".join(
        p.name if p.default is _NO_DEFAULT else f"{p.name}=_defaults[{p.name!r}]"
        for p in signature.parameters.values()
    )
    source = f"def {name}({params}):\n" + "".join(f"    {line}\n" for line in body)
    namespace = {**env, "_defaults": defaults}
    exec(compile(source, f"<fusedact.functional.{name}>", "exec"), namespace)
    function = namespace[name]
    function.__module__ = __name__
    return function


def _call(callee, first, spec):
    """`callee(<first args>, <op parameters in schema order>)` as source text."""
    return f"{callee}({', '.join(list(first) + list(spec.params))})"


def _default_call(spec: OpSpec, signature, body, env):
    """Prefixes `body` with the fast path: when every parameter is its default object,
    `_C.<op>_default(input)`, the op through the C++ API, skipping torch.ops' argument
    parsing (about 1 us of a 2 us call). It answers NotImplemented for tensor subclasses and
    torch-function modes, which then take torch.ops. torch.compile traces, in its place,
    the op's default overload (_substitute_in_graph), so there is no graph break."""
    default_call = getattr(_C, f"{spec.name}_default", None)
    if default_call is None:  # an op with required parameters
        return body
    _substitutes.append((default_call, spec.op.default))
    defaults = [p for p in signature.parameters.values() if p.default is not _NO_DEFAULT]
    env.update({f"_default_{p.name}": p.default for p in defaults})
    env["_default_call"] = default_call
    checks = " and ".join(f"{p.name} is _default_{p.name}" for p in defaults) or "True"
    return [
        f"if {checks}:",
        "    _result = _default_call(input)",
        "    if _result is not NotImplemented:",
        "        return _result",
    ] + body


# (_C.<op>_default, the op's default overload) pairs, for torch.compile (unary and gated ops
# only: the rowwise ops, whose dim is required, call torch.ops directly; see softmax below).
_substitutes = []


def _substitute_in_graph():
    """Has torch.compile trace each `_C.<op>_default` as the op's default overload. Run
    once torch._dynamo is imported: importing it here would slow `import fusedact` down."""
    for default_call, overload in _substitutes:
        torch.compiler.substitute_in_graph(default_call, skip_signature_check=True)(
            lambda input, overload=overload: overload(input)
        )


def _unary(spec: OpSpec):
    signature = _signature(["input"], spec, [("inplace", False)] if spec.inplace else [])
    body = [f"return {_call('_op', ['input'], spec)}"]
    if spec.inplace:
        body = ["if inplace:", f"    {_call('_inplace_op', ['input'], spec)}", "    return input"] + body
    # The overloads themselves: calling the packet resolves the overload again on every call.
    env = {"_op": spec.op.default,
           "_inplace_op": getattr(_ops, spec.name + "_").default if spec.inplace else None}
    body = _default_call(spec, signature, body, env)
    return _function(spec.name, signature, body, env), signature


def _gated(spec: OpSpec):
    signature = _signature(["input"], spec, [("dim", -1)])
    split_signature = _signature(["gate", "up"], spec)
    env = {"_op": spec.op.default, "_split_op": spec.op.split}
    body = _default_call(spec, signature, [f"return {_call('_op', ['input'], spec)[:-1]}, dim)"], env)
    fn = _function(spec.name, signature, body, env)
    split = _function(spec.name + "_split", split_signature, [f"return {_call('_split_op', ['gate', 'up'], spec)}"], env)
    return (fn, signature), (split, split_signature)


def _publish(name, fn, signature, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__signature__ = signature
    fn.__doc__ = doc
    globals()[name] = fn
    __all__.append(name)


def _weighted(spec: OpSpec):
    op = spec.op

    def fn(input, weight):
        return op(input, weight)

    return fn, inspect.signature(fn)


def _get_softmax_dim(name: str, ndim: int, stacklevel: int) -> int:
    """torch.nn.functional._get_softmax_dim: the legacy implicit dim of softmax-like calls
    without dim= (0 for 0-, 1- and 3-dim inputs, else 1) and torch's deprecation warning,
    attributed `stacklevel` frames up from here, as torch's (same frame depth: this helper,
    the functional, its caller). Under torch.compile there is no warning: Dynamo cannot trace
    warnings.warn (a graph break, an error with fullgraph=True)."""
    if not torch.compiler.is_compiling():
        warnings.warn(
            f"Implicit dimension choice for {name} has been deprecated. "
            "Change the call to include dim=X as an argument.",
            stacklevel=stacklevel,
        )
    if ndim == 0 or ndim == 1 or ndim == 3:
        ret = 0
    else:
        ret = 1
    return ret


# The row-wise ops, written out (not generated) so that TorchScript can compile them, and so
# fusedact.nn.Softmax & co, as torch.nn's. No `_C.<op>_default` fast path (_default_call):
# `dim` has no default in the op's schema, so there is no all-defaults call to shortcut and
# nothing for _substitute_in_graph. Docstrings come from the registry (below).


def softmax(
    input: torch.Tensor,
    dim: Optional[int] = None,
    _stacklevel: int = 3,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    if dim is None:
        dim = _get_softmax_dim("softmax", input.dim(), _stacklevel)
    return torch.ops.fusedact.softmax(input, dim, dtype)


def log_softmax(
    input: torch.Tensor,
    dim: Optional[int] = None,
    _stacklevel: int = 3,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    if dim is None:
        dim = _get_softmax_dim("log_softmax", input.dim(), _stacklevel)
    return torch.ops.fusedact.log_softmax(input, dim, dtype)


def softmin(
    input: torch.Tensor,
    dim: Optional[int] = None,
    _stacklevel: int = 3,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    if dim is None:
        dim = _get_softmax_dim("softmin", input.dim(), _stacklevel)
    return torch.ops.fusedact.softmin(input, dim, dtype)


_ROWWISE = {"softmax": softmax, "log_softmax": log_softmax, "softmin": softmin}


def rrelu(
    input: torch.Tensor,
    lower: float = 1.0 / 8,
    upper: float = 1.0 / 3,
    training: bool = False,
    inplace: bool = False,
) -> torch.Tensor:
    """RReLU, same arguments as torch.nn.functional.rrelu: leaky_relu with slope
    (lower + upper) / 2 when not training; in training, one slope per element drawn
    uniformly from [lower, upper] with torch's generator, kept for the backward."""
    if inplace:
        _ops.rrelu_(input, lower, upper, training)
        return input
    return _ops.rrelu(input, lower, upper, training)


__all__ = ["rrelu"]
for _spec in OPS:
    if _spec.kind == "random":  # written out above
        continue
    _doc = f"{_spec.doc}\n\nfusedact counterpart of torch.nn.functional.{_spec.name} (same arguments)."
    if _spec.kind == "unary":
        _publish(_spec.name, *_unary(_spec), _doc)
    elif _spec.kind == "weighted":
        _publish(_spec.name, *_weighted(_spec), _doc)
    elif _spec.kind == "rowwise":
        _publish(
            _spec.name,
            _ROWWISE[_spec.name],
            inspect.signature(_ROWWISE[_spec.name]),
            f"{_spec.doc}\n\nfusedact counterpart of torch.nn.functional.{_spec.name} (same arguments): "
            "`dtype`, if given, casts the input first; dim=None picks torch's deprecated implicit "
            "dim (0 for 0-, 1- and 3-dim inputs, else 1) with torch's warning.",
        )
    else:
        (_fn, _sig), (_split, _split_sig) = _gated(_spec)
        _publish(_spec.name, _fn, _sig, _doc)
        _publish(
            _spec.name + "_split",
            _split,
            _split_sig,
            f"{_spec.doc}\n\nThe two-tensor form: the activation's input `gate` and `up` kept apart.",
        )

call_after_import("torch._dynamo", _substitute_in_graph)
