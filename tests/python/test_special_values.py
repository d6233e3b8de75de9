"""NaN, +-inf, -0.0 and large/small values, forward and backward (grad_output of ones).

Why the CPU reference is computed one element at a time: torch's CPU kernels run a
vectorized loop over the bulk of a long tensor and a scalar loop over the tail, and the two
can disagree at special values (F.gelu(torch.tensor([inf] * 20)) is nan, while
F.gelu(torch.tensor([inf])) is inf). DESIGN.md makes torch's CUDA kernel the reference
where torch's paths disagree, and the CUDA kernel matches the scalar CPU path; a
one-element tensor always takes the scalar path. On CUDA the reference is torch's CUDA
kernel on the whole tensor.

The row-wise ops (registry kind "rowwise") are left out: a special value changes its whole
row, so they are tested on whole rows in test_softmax.py (and test_properties.py).
"""

import math

import pytest
import torch
from torch.testing import assert_close

from conftest import (
    DEVICES,
    DTYPE_IDS,
    DTYPES,
    GATED_CASES,
    UNARY_CASES,
    cuda_zero_sign,
    gelu_cdf_exact,
    gelu_exact,
    pack,
    reference_input,
)

SPECIAL = [
    math.nan,
    math.inf,
    -math.inf,
    -0.0,
    0.0,
    1e4,
    -1e4,
    88.8,
    -88.8,
    20.0,
    -20.0,
    1.0,
    -1.0,
    0.5,
    -0.5,
]


def _tiled(values, dtype, device, copies=7):
    """The values repeated, each copy rotated by one, so every value lands in several
    vector lanes and in the scalar tail of a vectorized loop (length 105 for 15 values)."""
    base = torch.tensor(values, dtype=torch.float64)
    t = torch.cat([base.roll(i) for i in range(copies)])
    return t.to(dtype=dtype, device=device)


def _elementwise(fn, *tensors):
    """fn applied to one-element slices, concatenated (see the module docstring)."""
    n = tensors[0].numel()
    outs = [fn(*(t[i : i + 1] for t in tensors)) for i in range(n)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs))
    return torch.cat(outs)


def _reference(fn, *tensors):
    if tensors[0].device.type == "cpu":
        return _elementwise(fn, *tensors)
    return fn(*tensors)


# assert_close's default (rtol, atol) per dtype; only used to list the mismatches.
_DEFAULT_TOL = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}


def _assert_same(ours, ref, what, inputs):
    """assert_close, plus the sign of zero: where torch gives -0.0, fusedact's result has its
    sign bit set too (assert_close treats -0.0 == 0.0). A tiny negative value within the
    tolerance also passes (e.g. silu'(-88.8): torch -0.0, the exact value -2.4e-37).
    `inputs` (tensors shaped like ref) are shown on a mismatch."""

    def show(mask):
        idx = mask.nonzero()[:10]
        return "; ".join(
            f"at {tuple(i.tolist())} inputs {[float(t[tuple(i)]) for t in inputs]}: "
            f"fusedact {float(ours[tuple(i)])!r} torch {float(ref[tuple(i)])!r}"
            for i in idx
        )

    close = None
    if ours.shape == ref.shape and ours.dtype == ref.dtype:
        rtol, atol = _DEFAULT_TOL[ref.dtype]
        close = torch.isclose(ours.double(), ref.double(), rtol=rtol, atol=atol, equal_nan=True)
    assert_close(
        ours,
        ref,
        equal_nan=True,
        msg=lambda m: f"{what}: {m}\n" + ("" if close is None else show(~close)),
    )
    neg_zero = (ref == 0) & torch.signbit(ref)
    bad = neg_zero & ~torch.signbit(ours)
    assert not bad.any(), f"{what}: torch gives -0.0 but fusedact's sign bit is clear {show(bad)}"


def _unary_value_and_grad(fn):
    def run(x):
        x = x.detach().requires_grad_()
        y = fn(x)
        (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
        return y.detach(), gx

    return run


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_special_values(spec, params, dtype, device):
    x = _tiled(SPECIAL, dtype, device)
    y, gx = _unary_value_and_grad(lambda t: spec.op(t, **params))(x)
    fix = _CPU_INPUT_AS_CUDA.get(spec.name) if device == "cpu" else None
    # The reference's input type: conftest.reference_input.
    y_ref, gx_ref = (
        t.to(dtype)
        for t in _reference(
            _unary_value_and_grad(
                lambda t: spec.reference(fix(t, params) if fix else t, **params)
            ),
            reference_input(x, spec, params),
        )
    )
    y_ref = cuda_zero_sign(spec.name, y_ref)
    _assert_same(y, y_ref, "forward", [x])
    _assert_same(gx, gx_ref, "backward (autograd)", [x])
    saved = y if spec.grad_from_output else x
    direct = spec.backward_op(torch.ones_like(x), saved, **params)
    _assert_same(direct, gx_ref, "backward op", [x])


def _gated_value_and_grads(fn):
    def run(gate, up):
        gate = gate.detach().requires_grad_()
        up = up.detach().requires_grad_()
        y = fn(gate, up)
        gg, gu = torch.autograd.grad(y, (gate, up), torch.ones_like(y))
        return y.detach(), gg, gu

    return run


# Known places where torch's CPU and CUDA kernels disagree beyond the vectorized/scalar split
# handled above; DESIGN.md makes the CUDA kernel the reference, so on CPU the reference is
# steered to the CUDA result. relu(-0.0) and clamps with a bound of 0 (relu6, hardtanh(0, 6)):
# torch's CPU clamp (std::max) keeps -0.0, its CUDA clamp (::max, i.e. fmaxf, in
# launch_clamp_scalar) returns the bound, +0.0 (read from torch's source; not run here, no
# GPU). Feeding +0.0 for -0.0 to the CPU op gives the CUDA result; the derivatives are 0 at
# both zeros, so gradients are unchanged. x + 0.0 turns -0.0 into +0.0 and nothing else.
_CPU_INPUT_AS_CUDA = {
    "relu": lambda x, params: x + 0.0,
    "relu6": lambda x, params: x + 0.0,
    "hardtanh": lambda x, params: x + 0.0 if 0.0 in (params["min_val"], params["max_val"]) else x,
}
_CPU_GATE_AS_CUDA = {
    "reglu": lambda gate: gate + 0.0,
}


class _GeluExact(torch.autograd.Function):
    """conftest.gelu_exact, the cancellation-free forms fusedact evaluates (functors.h), in
    float64, with its derivative; the value and the derivative each rounded to `work`
    (fusedact's compute dtype) and back, as fusedact rounds them."""

    @staticmethod
    def forward(ctx, x, approximate, work):
        ctx.save_for_backward(x)
        ctx.approximate, ctx.work = approximate, work
        return gelu_exact(x, approximate).to(work).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        s = gelu_cdf_exact(x, ctx.approximate)
        if ctx.approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            du = k * (1 + 3 * 0.044715 * x * x)
            one_minus_s = torch.sigmoid(-2 * k * (x + 0.044715 * x**3))
            d1 = s * (1 + 2 * x * one_minus_s * du)  # -0 for x << 0
        else:
            d1 = s + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return grad * d1.to(ctx.work).to(x.dtype), None, None


def _gated_reference(spec, params, dtype):
    """torch's composition, except geglu, whose activation is _GeluExact: torch's forms are
    exactly 0 from cancellation at a = -20 even in float64, where the function is about
    -1e-88 (exact) or -2.6e-261 (tanh), so with up = +-inf torch gives NaN where the
    function, like fusedact, gives -+inf (forward and gate gradient)."""
    if spec.name == "geglu":
        work = torch.float64 if dtype == torch.float64 else torch.float32
        approximate = params.get("approximate", "none")
        return lambda a, b: _GeluExact.apply(a, approximate, work) * b
    return lambda a, b: spec.reference(a, b, **params)


def _pairs(dtype, device):
    """Every (gate, up) pair of special values, 225 pairs."""
    g = torch.tensor(SPECIAL, dtype=torch.float64)
    gate = g.repeat_interleave(len(SPECIAL))
    up = g.repeat(len(SPECIAL))
    return gate.to(dtype=dtype, device=device), up.to(dtype=dtype, device=device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_special_values(spec, params, dtype, device):
    gate, up = _pairs(dtype, device)
    fix = _CPU_GATE_AS_CUDA.get(spec.name) if device == "cpu" else None
    reference = _gated_reference(spec, params, dtype)
    # The reference's input type: conftest.reference_input.
    y_ref, gg_ref, gu_ref = (
        t.to(dtype)
        for t in _reference(
            _gated_value_and_grads(
                lambda a, b: reference(fix(a) if fix else a, b)
            ),
            reference_input(gate, spec, params),
            reference_input(up, spec, params),
        )
    )

    # Two-tensor overload.
    y, gg, gu = _gated_value_and_grads(lambda a, b: spec.op.split(a, b, **params))(gate, up)
    _assert_same(y, y_ref, "split forward", [gate, up])
    _assert_same(gg, gg_ref, "split backward, gate", [gate, up])
    _assert_same(gu, gu_ref, "split backward, up", [gate, up])
    dgate, dup = spec.backward_op.split(torch.ones_like(gate), gate, up, **params)
    _assert_same(dgate, gg_ref, "split backward op, gate", [gate, up])
    _assert_same(dup, gu_ref, "split backward op, up", [gate, up])

    # Packed: rows of [gate | up] (or [up | gate] for glu), gated dim last.
    x = pack(spec, gate.view(15, 15), up.view(15, 15), dim=-1)
    xl = x.detach().requires_grad_()
    y = spec.op(xl, **params, dim=-1)
    (gx,) = torch.autograd.grad(y, xl, torch.ones_like(y))
    gx_ref = pack(spec, gg_ref.view(15, 15), gu_ref.view(15, 15), dim=-1)
    _assert_same(y.detach().flatten(), y_ref, "packed forward", [gate, up])
    _assert_same(gx, gx_ref, "packed backward", [x])
    direct = spec.backward_op(torch.ones_like(y), x, **params, dim=-1)
    _assert_same(direct, gx_ref, "packed backward op", [x])
