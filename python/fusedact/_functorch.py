"""torch.func.vmap batching rules for the fusedact ops, generated from the registry.

Elementwise ops (the unary ops, their backward and in-place forms, the gated `.split`
overloads and rrelu_with_noise) run once on the whole batch: every tensor argument is
brought to a leading batch dim. Packed gated ops do the same and shift a non-negative
`dim` past the batch dim. The row-wise ops (softmax, log_softmax, softmin) and their
backwards do the same with their `dim`; a 0-dim sample (a row of one element, dim 0 or -1)
runs as a row of size 1 on the last dim. The weighted ops (prelu, learnable_swish), whose
weight follows dimension 1 of each sample, use torch's fallback (one call per sample),
which is correct but slower. torch.func.grad / vjp / jacrev need nothing here: the C++ autograd nodes
(csrc/autograd.h) support them.
"""

import torch

from .registry import OPS, overloads



def _batched_to_front(args, in_dims, batch_size):
    """Tensor args with their batch dim first (expanded where unbatched); others as given."""
    out = []
    for arg, bdim in zip(args, in_dims):
        if isinstance(arg, torch.Tensor):
            if bdim is None:
                arg = arg.unsqueeze(0).expand(batch_size, *arg.shape)
            else:
                arg = arg.movedim(bdim, 0)
        out.append(arg)
    return out


def _out_dims(schema):
    returns = len(schema.returns)
    return 0 if returns == 1 else (0,) * returns


def _elementwise_rule(overload):
    schema = overload._schema
    mutates = any(a.alias_info is not None and a.alias_info.is_write for a in schema.arguments)

    def rule(info, in_dims, *args, **kwargs):
        if mutates:
            # The mutated tensor is the only tensor argument; it is modified in place whatever
            # its layout, so no data moves.
            overload(*args, **kwargs)
            return None, None
        result = overload(*_batched_to_front(args, in_dims, info.batch_size), **kwargs)
        return result, _out_dims(schema)

    return rule


def _packed_gated_rule(overload):
    schema = overload._schema
    names = [a.name for a in schema.arguments]
    dim_index = names.index("dim")
    dim_default = schema.arguments[dim_index].default_value

    def rule(info, in_dims, *args, **kwargs):
        args = _batched_to_front(args, in_dims, info.batch_size)
        if len(args) > dim_index:
            dim = args[dim_index]
            args[dim_index] = dim + 1 if dim >= 0 else dim
        else:
            dim = kwargs.get("dim", dim_default)
            kwargs = {**kwargs, "dim": dim + 1 if dim >= 0 else dim}
        return overload(*args, **kwargs), _out_dims(schema)

    return rule


def _rowwise_rule(overload):
    # X(input, dim, dtype=None) and X_backward(grad_output, output, dim): every tensor
    # argument has the sample's shape, so the batch dim goes to the front of each and a
    # non-negative dim moves one to the right. A 0-dim sample (where dim must be 0 or -1)
    # becomes a row of one element: [B] -> [B, 1], dim -1, and the result is squeezed back.
    schema = overload._schema
    names = [a.name for a in schema.arguments]
    dim_index = names.index("dim")
    tensor_indices = [i for i, a in enumerate(schema.arguments) if isinstance(a.type, torch.TensorType)]

    def rule(info, in_dims, *args, **kwargs):
        args = _batched_to_front(args, in_dims, info.batch_size)
        in_kwargs = len(args) <= dim_index
        dim = kwargs.get("dim") if in_kwargs else args[dim_index]
        sample_ndim = args[tensor_indices[0]].dim() - 1
        rank = max(sample_ndim, 1)  # a 0-dim tensor takes dim 0 or -1, as a 1-dim one
        if not (isinstance(dim, int) and -rank <= dim < rank):
            # Out of range for the sample (shifted, it could name the batch dim): the op
            # itself, run on the first sample with the dim as given, reports it.
            sample = list(args)
            for i in tensor_indices:
                t = args[i]
                sample[i] = t.select(0, 0) if t.size(0) else t.new_zeros(t.shape[1:])
            overload(*sample, **kwargs)
            raise IndexError(f"{schema.name}: dim {dim!r} is out of range for a sample of "
                             f"{sample_ndim} dims under vmap")
        scalar = sample_ndim == 0
        if scalar:
            for i in tensor_indices:
                args[i] = args[i].unsqueeze(-1)
            dim = -1
        elif dim >= 0:
            dim += 1
        if in_kwargs:
            kwargs = {**kwargs, "dim": dim}
        else:
            args[dim_index] = dim
        result = overload(*args, **kwargs)
        return (result.squeeze(-1) if scalar else result), _out_dims(schema)

    return rule


def _register():
    for spec in OPS:
        if spec.kind == "weighted":
            continue
        for overload in overloads(spec):
            if overload.has_kernel_for_dispatch_key(torch._C.DispatchKey.CompositeImplicitAutograd):
                continue  # decomposes into ops that have rules (rrelu, rrelu_)
            argument_names = [a.name for a in overload._schema.arguments]
            if spec.kind == "gated" and "dim" in argument_names:
                rule = _packed_gated_rule(overload)
            elif spec.kind == "rowwise":
                rule = _rowwise_rule(overload)
            else:
                rule = _elementwise_rule(overload)
            torch.library.register_vmap(overload, rule)


_register()
