"""DTensor sharding rules for the fusedact ops, generated from the op registry.

With these rules `torch.ops.fusedact.*` (and so `fusedact.functional` and `fusedact.nn`)
run on DTensor inputs shard by shard, without gathering the tensor where the math allows:

- elementwise ops (unary ops, their `_backward` / `_double_backward` / `_result_backward` /
  `_result_double_backward` ops, the in-place `X_` ops, `rrelu_with_noise` and its backward,
  and the `.split(gate, up)` overloads of the gated ops and of their backwards): the output
  takes the inputs' placement, `Shard(d)` on any dim or `Replicate()`. A `Partial` input is
  reduced first (the ops are nonlinear); an in-place op on a `Partial` input is refused by
  DTensor, as for torch's own in-place ops.
- packed gated ops `X(input, ..., dim)` and their backwards: `Shard(d)` on any dim but the
  gated one passes through. Sharded on the gated dim, a rank would hold parts of both halves,
  so the input is gathered (`Replicate()`) first.
- row-wise ops `X(input, dim, dtype=None)` (softmax, log_softmax, softmin) and their
  backwards `X_backward(grad_output, output, dim)`: `Shard(d)` on any dim but `dim` passes
  through (every row is whole on one rank); sharded on `dim`, a row would be split across
  ranks, so the inputs are gathered (`Replicate()`) first. A `Partial` input is reduced first.
- weighted ops (`prelu`, `learnable_swish`): input sharded on any non-channel dim with the
  weight replicated passes through; input sharded on the channel dim (1) runs with the
  per-channel weight sharded the same way (`Shard(0)`). In the backward, `grad_weight` of an
  input sharded on a non-channel dim is `Partial("sum")` (each rank sums its own rows; the sum
  over ranks is deferred until it is needed).

Importing this module is cheap (it does not import `torch.distributed.tensor`). `fusedact`
calls `install()` at import: the rules are registered at once when DTensor is already
imported, otherwise right after the first `import torch.distributed.tensor`.
`register_sharding_rules()` registers them explicitly (idempotent).
"""

from __future__ import annotations

import threading
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ._after_import import call_after_import
from .registry import OPS, OpSpec, overloads

__all__ = ["install", "register_sharding_rules", "registered_rules", "unsupported_reason"]

_DTENSOR_MODULE = "torch.distributed.tensor"

_lock = threading.Lock()
_registered: Dict[str, str] = {}  # "fusedact::op.overload" -> rule name
_unsupported_reason: Optional[str] = None
_done = False
_installed = False  # the import hook is set (install() is idempotent)


# --------------------------------------------------------------------------------------
# Enumerating the ops


def _qualname(op) -> str:
    schema = op._schema
    return schema.name + ("." + schema.overload_name if schema.overload_name else "")


def _is_composite(op) -> bool:
    # A CompositeImplicitAutograd op (rrelu, rrelu_) decomposes into other ops above the
    # DTensor dispatch key, so DTensor never sees it; a rule would make DTensor run the whole
    # composite on local shards, including its random draw outside DTensor's RNG handling.
    return op.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd)


def _tensor_arg_names(op) -> List[str]:
    return [a.name for a in op._schema.arguments if isinstance(a.type, torch.TensorType)]


def _rule_for(spec: OpSpec, op) -> Optional[Tuple[str, Callable]]:
    """(rule name, sharding function) for one overload, chosen from its kind and schema."""
    arg_names = [a.name for a in op._schema.arguments]
    tensor_names = _tensor_arg_names(op)
    if not tensor_names:
        return None
    n_out = len(op._schema.returns)
    if spec.kind == "gated" and "dim" in arg_names:
        return "gated_packed", _gated_packed_rule(op, n_out)
    if spec.kind == "rowwise" and "dim" in arg_names:
        return "rowwise", _rowwise_rule(op, n_out)
    if spec.kind == "weighted" and "weight" in tensor_names:
        if n_out == 1:
            return "weighted", _weighted_forward_rule(op)
        if n_out == 2:
            return "weighted_backward", _weighted_backward_rule(op)
        return None
    # unary ops and their derived ops, rrelu_with_noise(_backward), gated .split overloads
    return "elementwise", _elementwise_rule(op, n_out)


# --------------------------------------------------------------------------------------
# The sharding functions. Each receives the op's arguments with DTensorSpecs in place of the
# tensors and returns the acceptable (output placements, input placements) pairs for one
# mesh dimension: one placement per return, and per argument (None for the non-tensor ones).
# DTensor expands them over the mesh dims, picks the pair cheapest to reach from the actual
# inputs and redistributes the inputs to it.


def _binder(op):
    """Maps (args, kwargs) of a call to {argument name: value}, defaults filled in."""
    arguments = op._schema.arguments

    def bind(args, kwargs):
        values = {}
        for i, a in enumerate(arguments):
            if i < len(args):
                values[a.name] = args[i]
            elif a.name in kwargs:
                values[a.name] = kwargs[a.name]
            elif a.has_default_value():
                values[a.name] = a.default_value
            else:
                values[a.name] = None
        return values

    return bind


def _placements():
    from torch.distributed.tensor import Replicate, Shard

    try:
        from torch.distributed.tensor import Partial
    except ImportError:  # older torch
        from torch.distributed.tensor.placement_types import Partial
    return Replicate, Shard, Partial


def _shape(spec) -> Optional[Tuple[int, ...]]:
    meta = getattr(spec, "tensor_meta", None)
    return None if meta is None else tuple(meta.shape)


def _all_as(n_out: int, arg_names, tensor_names):
    """p -> the strategy placing every output and every tensor argument as p."""

    def all_as(p):
        return ([p] * n_out, [p if n in tensor_names else None for n in arg_names])

    return all_as


def _elementwise_rule(op, n_out: int):
    bind = _binder(op)
    arg_names = [a.name for a in op._schema.arguments]
    tensor_names = set(_tensor_arg_names(op))

    def rule(*args, **kwargs):
        Replicate, Shard, _ = _placements()
        values = bind(args, kwargs)
        shapes = {_shape(values[n]) for n in tensor_names if values[n] is not None}

        all_as = _all_as(n_out, arg_names, tensor_names)

        strategies = [all_as(Replicate())]
        # Sharding elementwise is only valid when every tensor has the same shape; anything
        # else (an error the kernel reports) runs replicated.
        if len(shapes) == 1 and None not in shapes:
            (shape,) = shapes
            strategies += [all_as(Shard(d)) for d in range(len(shape))]
        return strategies

    return rule


def _gated_packed_rule(op, n_out: int):
    bind = _binder(op)
    arg_names = [a.name for a in op._schema.arguments]
    tensor_names = set(_tensor_arg_names(op))

    def rule(*args, **kwargs):
        Replicate, Shard, _ = _placements()
        values = bind(args, kwargs)
        shapes = [_shape(values[n]) for n in arg_names if n in tensor_names]

        all_as = _all_as(n_out, arg_names, tensor_names)

        strategies = [all_as(Replicate())]
        if any(s is None for s in shapes) or len({len(s) for s in shapes}) != 1:
            return strategies
        ndim = len(shapes[0])
        dim = values.get("dim")
        if ndim == 0 or not isinstance(dim, int) or not -ndim <= dim < ndim:
            return strategies  # the kernel reports the bad dim
        gated_dim = dim % ndim
        # Packed input, half-size grads: equal everywhere but on the gated dim.
        if len({s[:gated_dim] + s[gated_dim + 1 :] for s in shapes}) != 1:
            return strategies
        # On the gated dim a shard would hold the end of one half and the start of the other.
        strategies += [all_as(Shard(d)) for d in range(ndim) if d != gated_dim]
        return strategies

    return rule


def _rowwise_rule(op, n_out: int):
    bind = _binder(op)
    arg_names = [a.name for a in op._schema.arguments]
    tensor_names = set(_tensor_arg_names(op))

    def rule(*args, **kwargs):
        Replicate, Shard, _ = _placements()
        values = bind(args, kwargs)
        shapes = {_shape(values[n]) for n in tensor_names if values[n] is not None}

        all_as = _all_as(n_out, arg_names, tensor_names)

        strategies = [all_as(Replicate())]
        # One shape for every tensor (input; or grad_output and output), else the kernel
        # reports the mismatch, replicated.
        if len(shapes) != 1 or None in shapes:
            return strategies
        (shape,) = shapes
        ndim = len(shape)
        dim = values.get("dim")
        if ndim == 0 or isinstance(dim, bool) or not isinstance(dim, int) or not -ndim <= dim < ndim:
            return strategies  # a 0-dim tensor has nothing to shard; the kernel reports a bad dim
        row_dim = dim % ndim
        # Each rank must hold whole rows: any dim but the row's.
        strategies += [all_as(Shard(d)) for d in range(ndim) if d != row_dim]
        return strategies

    return rule


def _weighted_layout(values, Shard, Replicate):
    """[(input placement, weight placement, grad_weight placement or None)] for prelu-like
    (input, weight): weight one per channel (dim 1 of the input) or one for all."""
    input_shape, weight_shape = _shape(values["input"]), _shape(values["weight"])
    if input_shape is None or weight_shape is None:
        return []
    ndim = len(input_shape)
    weight_numel = 1
    for s in weight_shape:
        weight_numel *= s
    channels = input_shape[1] if ndim >= 2 else 1
    if weight_numel == 1:
        per_channel = False
    elif len(weight_shape) == 1 and weight_numel == channels:
        per_channel = True
    else:
        return []  # invalid weight: the kernel reports it (replicated)
    layouts = []
    for d in range(ndim):
        if d == 1 and per_channel:
            # Channels split across ranks: each rank takes the same slice of the weight, and
            # its grad_weight entries are complete (sharded, no reduction pending).
            layouts.append((Shard(1), Shard(0), Shard(0)))
        else:
            layouts.append((Shard(d), Replicate(), "partial"))
    return layouts


def _weighted_forward_rule(op):
    bind = _binder(op)
    arg_names = [a.name for a in op._schema.arguments]

    def rule(*args, **kwargs):
        Replicate, Shard, _ = _placements()
        values = bind(args, kwargs)

        def strategy(out, placements):
            return ([out], [placements.get(n) for n in arg_names])

        strategies = [strategy(Replicate(), {"input": Replicate(), "weight": Replicate()})]
        for x, w, _ in _weighted_layout(values, Shard, Replicate):
            strategies.append(strategy(x, {"input": x, "weight": w}))
        return strategies

    return rule


def _weighted_backward_rule(op):
    # X_backward(grad_output, input, weight) -> (grad_input, grad_weight)
    bind = _binder(op)
    arg_names = [a.name for a in op._schema.arguments]

    def rule(*args, **kwargs):
        Replicate, Shard, Partial = _placements()
        values = bind(args, kwargs)

        def strategy(outs, placements):
            return (list(outs), [placements.get(n) for n in arg_names])

        R = Replicate()
        strategies = [strategy((R, R), {"grad_output": R, "input": R, "weight": R})]
        for x, w, gw in _weighted_layout(values, Shard, Replicate):
            # grad_weight sums over every dim but the channel one: per rank, the sum over its
            # own slice of a non-channel dim, to be added up over the ranks.
            gw = Partial("sum") if gw == "partial" else gw
            strategies.append(strategy((x, gw), {"grad_output": x, "input": x, "weight": w}))
        return strategies

    return rule


# --------------------------------------------------------------------------------------
# Registration


def unsupported_reason() -> Optional[str]:
    """Why no rules could be registered (an older torch), or None."""
    return _unsupported_reason


def registered_rules() -> Dict[str, str]:
    """{"fusedact::op.overload": rule name} of the rules registered so far."""
    with _lock:
        return dict(_registered)


def register_sharding_rules() -> Dict[str, str]:
    """Registers DTensor sharding rules for every fusedact op of the registry (idempotent).

    Returns registered_rules(). Raises ImportError where torch has no
    torch.distributed.tensor.experimental.register_sharding (torch < 2.5) or no distributed
    support."""
    global _done, _unsupported_reason
    with _lock:
        if _done:
            return dict(_registered)
        if not torch.distributed.is_available():
            _unsupported_reason = "torch.distributed is not available in this torch build"
            raise ImportError(_unsupported_reason)
        try:
            from torch.distributed.tensor.experimental import register_sharding
        except ImportError as e:
            _unsupported_reason = (
                f"torch {torch.__version__} has no torch.distributed.tensor.experimental."
                f"register_sharding ({e})"
            )
            raise ImportError(_unsupported_reason) from e
        for spec in OPS:
            for op in overloads(spec):
                if _is_composite(op):
                    continue
                chosen = _rule_for(spec, op)
                if chosen is None:
                    continue
                name, fn = chosen
                register_sharding(op)(fn)
                _registered[_qualname(op)] = name
        _done = True
        return dict(_registered)


def _register_quietly() -> None:
    try:
        register_sharding_rules()
    except ImportError:
        pass  # older torch: DTensor inputs raise DTensor's own "no sharding strategy" error
    except Exception as e:  # never break the user's import of torch.distributed.tensor
        warnings.warn(f"fusedact: could not register DTensor sharding rules: {e!r}")


def install() -> None:
    """Registers the rules now if DTensor is already imported, else right after it is."""
    global _installed
    if _done or _installed or not torch.distributed.is_available():
        return
    _installed = True
    call_after_import(_DTENSOR_MODULE, _register_quietly)
