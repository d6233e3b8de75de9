"""Functional interface mirroring torch.nn.functional, generated from the op registry.

Each unary op `f` is `f(input, <params in schema order, with torch's defaults>)`, plus
`inplace=False` where torch.nn.functional has it; each gated op `g` is
`g(input, <params>, dim=-1)` and `g_split(gate, up, <params>)` for separate tensors; each
weighted op `w` is `w(input, weight)`.
"""

import inspect

import torch

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


def _unary(spec: OpSpec):
    signature = _signature(["input"], spec, [("inplace", False)] if spec.inplace else [])
    body = [f"return {_call('_op', ['input'], spec)}"]
    if spec.inplace:
        body = ["if inplace:", f"    {_call('_inplace_op', ['input'], spec)}", "    return input"] + body
    # The overloads themselves: calling the packet resolves the overload again on every call.
    env = {"_op": spec.op.default,
           "_inplace_op": getattr(_ops, spec.name + "_").default if spec.inplace else None}
    return _function(spec.name, signature, body, env), signature


def _gated(spec: OpSpec):
    signature = _signature(["input"], spec, [("dim", -1)])
    split_signature = _signature(["gate", "up"], spec)
    env = {"_op": spec.op.default, "_split_op": spec.op.split}
    fn = _function(spec.name, signature, [f"return {_call('_op', ['input'], spec)[:-1]}, dim)"], env)
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
    else:
        (_fn, _sig), (_split, _split_sig) = _gated(_spec)
        _publish(_spec.name, _fn, _sig, _doc)
        _publish(
            _spec.name + "_split",
            _split,
            _split_sig,
            f"{_spec.doc}\n\nThe two-tensor form: the activation's input `gate` and `up` kept apart.",
        )
