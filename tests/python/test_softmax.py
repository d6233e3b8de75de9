"""The row-wise ops softmax, log_softmax and softmin (torch.ops.fusedact, fusedact.functional,
fusedact.nn) against torch.nn.functional / torch.nn, forward and backward.

Covered: float32/float64/float16/bfloat16; 0-dim, 1-dim, 0-size (in the softmax dim and
elsewhere), rows of 1, short rows 1..33, long rows (1000, 4097, 70000), 3-4 dims; dim -1, 0,
a middle dim and out of range; transposed, step-sliced, expanded and channels_last inputs;
dtype= (casts, integer input); special values (-inf rows, +inf, NaN, huge magnitudes);
gradcheck/gradgradcheck and torch.library.opcheck of the ops and of X_backward;
torch.compile(fullgraph=True); torch.func.vmap; determinism (prefixes, thread counts); the
vectorized CPU kernels vs the scalar ones (ATEN_CPU_CAPABILITY=default in a child process).

References are torch's: torch.nn.functional / torch.nn (forward) and torch's backward kernels
aten::_softmax_backward_data / _log_softmax_backward_data (what torch's autograd runs), on the
same values as the op sees (after dtype='s cast), run in a wider dtype and rounded once to the
op's dtype: float64 for float32, float32 for float16/bfloat16 (float64 as is). The gradient
reference takes grad_output and the rounded reference output, as X_backward takes the output.
- float16/bfloat16: the contract (and DESIGN.md's convention for the half types) is "compute
  in float32, round once". torch's own half-type CPU log_softmax over the last dim rounds an
  intermediate to the half type: measured here (torch 2.11, 256 rows of 3*randn, against
  float64), it is off by up to 128 bfloat16 eps (rows of 2..33) and up to 1024 float16 eps
  (rows of 2), relative, near 0, where float32 rounded once is within 0.5-2 eps;
  test_half_log_softmax_no_less_accurate_than_torch checks that fusedact is no further from
  float64 than torch's own half-type result there.
- float32: torch's float32 log_softmax backward on a row of 70000 (2 x 70000, 3*randn, seed 0)
  is off the float64 value by 2.5e-5 (its sum of grad_output), past the float32 tolerance
  of the float64 value, where fusedact is off by 2.1e-6 (measured 2026-11-22).
Where the point is torch's exact behaviour (special values, huge magnitudes) the reference is
torch in the op's own dtype (float32/float64; the half types still through float32).
A gradient that flows back through a dtype= cast to a wider input dtype is compared in the
compute dtype (its values are those of the compute dtype, exactly cast).
Tolerances: torch.testing.assert_close defaults per dtype, equal_nan=True.
"""

import inspect
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import fusedact
from conftest import DEVICES, assert_raises_named, randn, requires_cuda

NAMES = ("softmax", "log_softmax", "softmin")
MODULES = {"softmax": "Softmax", "log_softmax": "LogSoftmax", "softmin": "Softmin"}
TORCH_F = {"softmax": F.softmax, "log_softmax": F.log_softmax, "softmin": F.softmin}
HALF = (torch.float16, torch.bfloat16)
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]

device_param = pytest.mark.parametrize("device", DEVICES)
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
name_param = pytest.mark.parametrize("name", NAMES)


def _op(name):
    return getattr(torch.ops.fusedact, name)


def _backward_op(name):
    return getattr(torch.ops.fusedact, name + "_backward")


def _fa(name):
    import fusedact.functional as FA

    return getattr(FA, name)


def _fn_module(name):
    import fusedact.nn as FN

    return getattr(FN, MODULES[name])


# --------------------------------------------------------------------------------------
# References (torch) and the fusedact callables


def torch_backward_data(name, g, y, dim, input_dtype):
    """torch's backward kernels: the gradient wrt the input given the output y."""
    if name == "log_softmax":
        return torch._log_softmax_backward_data(g, y, dim, input_dtype)
    gx = torch._softmax_backward_data(g, y, dim, input_dtype)
    return -gx if name == "softmin" else gx  # softmin(x) = softmax(-x)


def _torch_call(name, dim, dtype, module):
    if module:
        assert dtype is None
        return getattr(torch.nn, MODULES[name])(dim)
    return lambda t: TORCH_F[name](t, dim=dim, dtype=dtype)


WIDER = {torch.float16: torch.float32, torch.bfloat16: torch.float32, torch.float32: torch.float64,
         torch.float64: torch.float64}


def reference(name, x, dim, dtype=None, g=None, module=False, wide=True):
    """torch's (output, gradient wrt x for grad_output g, or None), see the module docstring:
    computed in WIDER[compute dtype] and rounded once (wide=False: in the compute dtype itself,
    except the half types, which torch computes in float32 too).
    `module`: torch.nn's module instead of torch.nn.functional (dtype must be None)."""
    cd = dtype or x.dtype  # the dtype the op computes in, after dtype='s cast
    wd = WIDER[cd] if wide or cd in HALF else cd
    xc = x.detach().to(cd)  # the cast dtype= does first
    y = _torch_call(name, dim, None, module)(xc.to(wd)).to(cd)
    gx = None
    if g is not None and x.is_floating_point():
        gx = torch_backward_data(name, g.to(wd), y.to(wd), dim, wd).to(cd).to(x.dtype)
    return y, gx


def ours(api, name, dim, dtype=None):
    """The fusedact callable of one API: the op, the functional wrapper or the nn module."""
    if api == "op":
        return lambda t: _op(name)(t, dim, dtype)
    if api == "functional":
        return lambda t: _fa(name)(t, dim, dtype=dtype)
    assert api == "nn" and dtype is None
    return _fn_module(name)(dim)


def run(fn, x, g):
    """(output, gradient wrt x or None) of fn."""
    leaf = x.detach().requires_grad_(x.is_floating_point())
    y = fn(leaf)
    gx = torch.autograd.grad(y, leaf, g)[0] if leaf.requires_grad else None
    return y.detach(), gx


def grad_for(name, x, dim, dtype=None, module=False):
    """A grad_output for the output's shape and dtype (from torch's output)."""
    y, _ = reference(name, x, dim, dtype, module=module)
    return randn(y.shape, y.dtype, x.device, scale=1.0)


def check(api, name, x, dim, dtype=None, what=""):
    module = api == "nn"
    g = grad_for(name, x, dim, dtype, module)
    y_ref, gx_ref = reference(name, x, dim, dtype, g, module)
    x_before = x.clone()
    y, gx = run(ours(api, name, dim, dtype), x, g)
    where = f"{api} {name} dim={dim} dtype={dtype} input {x.dtype} {tuple(x.shape)} strides {x.stride()} {what}"
    assert y.dtype == y_ref.dtype, f"{where}: output dtype {y.dtype}, torch {y_ref.dtype}"
    assert y.shape == y_ref.shape, f"{where}: output shape {tuple(y.shape)}, torch {tuple(y_ref.shape)}"
    assert y.device == x.device
    assert_close(y, y_ref, equal_nan=True, msg=lambda m: f"{where}, forward: {m}")
    if gx_ref is not None:
        assert gx.dtype == x.dtype, f"{where}: grad dtype {gx.dtype}, input {x.dtype}"
        # Through a cast to a narrower compute dtype, the gradient holds that dtype's values.
        cmp = y.dtype if y.dtype.itemsize < x.dtype.itemsize else x.dtype
        assert_close(gx.to(cmp), gx_ref.to(cmp), equal_nan=True, msg=lambda m: f"{where}, backward: {m}")
    assert_close(x, x_before, equal_nan=True, rtol=0, atol=0, msg=lambda m: f"{where}: input modified: {m}")
    return y, gx


# --------------------------------------------------------------------------------------
# Shapes and dims

SHAPE_DIMS = [
    ((), [-1, 0]),  # 0-dim: a row of one element
    ((1,), [0]),
    ((7,), [-1]),
    ((0,), [0]),  # 0-size softmax dim
    ((3, 0), [-1]),
    ((0, 3), [0]),
    ((2, 0, 3), [1, -1, 0]),  # 0-size in the softmax dim (1) and elsewhere (-1, 0)
    ((0, 5), [-1]),  # 0-size elsewhere
    ((5, 0), [0]),
    ((6, 1), [-1]),  # rows of 1
    ((1, 6), [0]),
    ((2, 1000), [-1]),
    ((4099, 16), [-1]),  # many short rows: split among threads, then into row chunks
    ((3, 4097), [-1, 0]),
    ((4097, 3), [0]),
    ((1000, 2), [0]),
    ((2, 70000), [-1]),
    ((70000,), [0]),
    ((70000, 3), [0]),  # a long row along a non-last dim
    ((4, 5, 6), [-1, 0, 1]),
    ((2, 3, 5, 7), [-1, 0, 1, 2]),
]
SHAPE_CASES = [
    pytest.param(shape, dim, id=f"{'x'.join(map(str, shape)) or 'scalar'}-dim{dim}")
    for shape, dims in SHAPE_DIMS
    for dim in dims
]
# The subset the functional and nn wrappers run on (they forward to the same op), in float32
# and bfloat16 (the other dtypes go through the same call).
API_SHAPES = {"scalar-dim-1", "7-dim-1", "2x0x3-dim1", "6x1-dim-1", "3x4097-dim0", "2x70000-dim-1",
              "4x5x6-dim1", "2x3x5x7-dim2"}
API_CASES = [c for c in SHAPE_CASES if c.id in API_SHAPES]


@device_param
@pytest.mark.parametrize("shape,dim", SHAPE_CASES)
@dtype_param
@name_param
def test_op_matches_torch(name, dtype, shape, dim, device):
    check("op", name, randn(shape, dtype, device), dim)


@device_param
@pytest.mark.parametrize("api", ["functional", "nn"])
@pytest.mark.parametrize("shape,dim", API_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@name_param
def test_functional_and_nn_match_torch(name, dtype, shape, dim, api, device):
    check(api, name, randn(shape, dtype, device), dim)


@device_param
@dtype_param
@name_param
def test_short_rows(name, dtype, device):
    """Rows of 1..33 elements (around every vector width and its tail), along the last dim
    and along dim 0."""
    for n in range(1, 34):
        check("op", name, randn((5, n), dtype, device), -1, what=f"(row of {n})")
        check("op", name, randn((n, 5), dtype, device), 0, what=f"(row of {n})")


def _layouts(device, dtype):
    """(id, tensor, dims) of non-contiguous inputs."""
    r = lambda *shape: randn(shape, dtype, device)  # noqa: E731
    return [
        ("transposed", r(7, 9).t(), [-1, 0]),
        ("transposed-long", r(1029, 5).t(), [-1, 0]),
        ("sliced-steps", r(9, 40)[::2, 1::3], [-1, 0]),
        ("sliced-negative-offset", r(6, 70)[1:, 3:-2], [-1, 0]),
        ("expanded-rows", r(1, 33).expand(5, 33), [-1, 0]),
        ("expanded-in-row", r(5, 1).expand(5, 33), [-1, 0]),
        ("permuted-3d", r(4, 5, 6).permute(2, 0, 1), [-1, 0, 1]),
        ("channels_last", r(2, 3, 4, 5).contiguous(memory_format=torch.channels_last), [1, -1, 0, 2]),
        ("channels_last-wide", r(2, 40, 3, 3).contiguous(memory_format=torch.channels_last), [1, -1]),
    ]


@device_param
@dtype_param
@name_param
def test_non_contiguous(name, dtype, device):
    for layout, x, dims in _layouts(device, dtype):
        assert not x.is_contiguous()
        for dim in dims:
            check("op", name, x, dim, what=layout)
    # The wrappers too, on one layout.
    x = randn((7, 9), dtype, device).t()
    check("functional", name, x, 0, what="transposed")
    check("nn", name, x, -1, what="transposed")


@device_param
@name_param
def test_output_is_contiguous_and_fresh(name, device):
    """The contract: a contiguous output of the input's shape, never aliasing the input."""
    x = randn((2, 3, 4, 5), torch.float32, device).contiguous(memory_format=torch.channels_last)
    for dim in (1, -1):
        y = _op(name)(x, dim)
        assert y.is_contiguous() and y.shape == x.shape
        assert y.data_ptr() != x.data_ptr()
    x = randn((), torch.float32, device)
    assert _op(name)(x, 0).shape == ()


# --------------------------------------------------------------------------------------
# dtype=


DTYPE_CASTS = [
    pytest.param(torch.bfloat16, torch.float32, id="bf16-to-f32"),
    pytest.param(torch.float16, torch.float32, id="f16-to-f32"),
    pytest.param(torch.float32, torch.float64, id="f32-to-f64"),
    pytest.param(torch.float64, torch.float32, id="f64-to-f32"),
    pytest.param(torch.float32, torch.bfloat16, id="f32-to-bf16"),
    pytest.param(torch.float32, torch.float16, id="f32-to-f16"),
    pytest.param(torch.int64, torch.float32, id="i64-to-f32"),
    pytest.param(torch.int32, torch.float64, id="i32-to-f64"),
    pytest.param(torch.bool, torch.float32, id="bool-to-f32"),
]


def _input_of(dtype, shape, device):
    if dtype == torch.bool:
        return torch.rand(shape, device=device) > 0.5
    if not dtype.is_floating_point:
        return torch.randint(0 if dtype == torch.uint8 else -20, 20, shape, device=device, dtype=dtype)
    return randn(shape, dtype, device)


@device_param
@pytest.mark.parametrize("api", ["op", "functional"])
@pytest.mark.parametrize("in_dtype,dtype", DTYPE_CASTS)
@name_param
def test_dtype_argument(name, in_dtype, dtype, api, device):
    """Output in dtype, the gradient back in the input's dtype, both as torch."""
    if name == "softmin" and in_dtype == torch.bool:
        pytest.skip("torch raises for softmin of bool with dtype= (it negates before the cast): "
                    "test_softmin_negates_before_the_cast checks that fusedact raises too")
    for shape, dim in (((4, 33), -1), ((33, 4), 0), ((3, 4097), -1), ((), 0)):
        y, gx = check(api, name, _input_of(in_dtype, shape, device), dim, dtype)
        assert y.dtype == dtype
        if in_dtype.is_floating_point:
            assert gx.dtype == in_dtype


@device_param
def test_softmin_negates_before_the_cast(device):
    """torch's F.softmin(x, dim, dtype=...) is (-x).softmax(dim, dtype): the negation runs in
    the input's dtype, so integers wrap around and bool raises; fusedact does the same."""
    for in_dtype in (torch.uint8, torch.int8, torch.int32):
        x = torch.tensor([[1, 0, 2, 127], [5, 3, 0, 1]], dtype=in_dtype, device=device)
        want = F.softmin(x, -1, dtype=torch.float32)
        assert_close(_op("softmin")(x, -1, torch.float32), want)
        assert_close(_fa("softmin")(x, -1, dtype=torch.float32), want)
    x = _input_of(torch.bool, (4, 7), device)
    with pytest.raises(RuntimeError, match="Negation"):
        F.softmin(x, -1, dtype=torch.float32)
    for fn in (lambda t: _op("softmin")(t, -1, torch.float32), lambda t: _fa("softmin")(t, -1, dtype=torch.float32)):
        with pytest.raises(RuntimeError, match="fusedact::softmin: argument 'input' is bool"):
            fn(x)


INT_DTYPES = [torch.int64, torch.int32, torch.uint8, torch.bool]


@device_param
@pytest.mark.parametrize("api", ["op", "functional", "nn"])
@pytest.mark.parametrize("in_dtype", INT_DTYPES, ids=lambda d: str(d).replace("torch.", ""))
@name_param
def test_integer_input_without_dtype_raises_as_torch(name, in_dtype, api, device):
    x = _input_of(in_dtype, (3, 5), device)
    # torch: NotImplementedError '"softmax_lastdim_kernel_impl" not implemented for 'Long'' (softmin
    # of bool: RuntimeError 'Negation ... on a bool tensor is not supported').
    with pytest.raises(RuntimeError):
        _torch_call(name, -1, None, api == "nn")(x)
    assert_raises_named(lambda: ours(api, name, -1)(x), name, "input")


@device_param
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool], ids=["i64", "i32", "bool"])
@name_param
def test_non_floating_dtype_argument_raises_as_torch(name, dtype, device):
    for x in (randn((3, 5), torch.float32, device), _input_of(torch.int64, (3, 5), device)):
        with pytest.raises(RuntimeError):
            TORCH_F[name](x, -1, dtype=dtype)
        assert_raises_named(lambda: _op(name)(x, -1, dtype), name, ("dtype", "input"))


# --------------------------------------------------------------------------------------
# Errors


def _out_of_range(ndim):
    rank = max(ndim, 1)
    return [rank, -rank - 1, rank + 5]


@device_param
@pytest.mark.parametrize("api", ["op", "functional", "nn"])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (2, 3, 4)], ids=["0d", "1d", "2d", "3d"])
@name_param
def test_dim_out_of_range(name, shape, api, device):
    x = randn(shape, torch.float32, device)
    for dim in _out_of_range(len(shape)):
        with pytest.raises(IndexError):
            _torch_call(name, dim, None, api == "nn")(x)
        assert_raises_named(lambda: ours(api, name, dim)(x), name, "dim")


@device_param
@name_param
def test_backward_op_errors(name, device):
    y = _op(name)(randn((3, 5), torch.float32, device), -1)
    g = randn((3, 5), torch.float32, device)
    bwd = _backward_op(name)
    for dim in (2, -3):
        assert_raises_named(lambda: bwd(g, y, dim), name + "_backward", "dim")
    # grad_output must match output in shape and dtype.
    assert_raises_named(lambda: bwd(randn((3, 4), torch.float32, device), y, -1), name + "_backward",
                        ("grad_output", "output"))
    assert_raises_named(lambda: bwd(g.double(), y, -1), name + "_backward", ("grad_output", "output"))


# --------------------------------------------------------------------------------------
# The backward ops themselves


@device_param
@pytest.mark.parametrize("shape,dim", [((4, 33), -1), ((33, 4), 0), ((3, 4097), -1), ((4, 5, 6), 1),
                                       ((), 0), ((2, 0), -1)], ids=["4x33-1", "33x4-0", "3x4097--1",
                                                                    "4x5x6-1", "scalar-0", "2x0--1"])
@dtype_param
@name_param
def test_backward_op_matches_torch(name, dtype, shape, dim, device):
    """X_backward(grad_output, output, dim) vs torch's backward kernel (in WIDER[dtype],
    rounded once)."""
    x = randn(shape, dtype, device)
    y, _ = reference(name, x, dim)
    g = randn(shape, dtype, device, scale=1.0)
    wd = WIDER[dtype]
    expected = torch_backward_data(name, g.to(wd), y.to(wd), dim, wd).to(dtype)
    got = _backward_op(name)(g, y, dim)
    assert got.dtype == dtype and got.shape == y.shape
    assert_close(got, expected, equal_nan=True)


# --------------------------------------------------------------------------------------
# Special values

HUGE = {torch.float32: 3e38, torch.float64: 1e308, torch.float16: 6e4, torch.bfloat16: 3e38}
INF, NAN = float("inf"), float("nan")


def _special_rows(n, dtype):
    """Rows of n elements around special values, each at the start, middle and end."""
    h = HUGE[dtype]
    base = torch.linspace(-3, 3, n, dtype=torch.float64)
    rows = [torch.full((n,), -INF, dtype=torch.float64),  # all -inf: NaN as torch
            torch.full((n,), INF, dtype=torch.float64),
            torch.full((n,), NAN, dtype=torch.float64),
            torch.full((n,), h, dtype=torch.float64),  # all equal and huge: uniform
            torch.full((n,), -h, dtype=torch.float64)]
    for pos in sorted({0, n // 2, n - 1}):
        for v in (-INF, INF, NAN, h, -h, 1e4, -1e4):
            r = base.clone()
            r[pos] = v
            rows.append(r)
        r = torch.full((n,), -INF, dtype=torch.float64)  # one finite value among -inf
        r[pos] = 1.5
        rows.append(r)
        r = torch.full((n,), -h, dtype=torch.float64)
        r[pos] = h
        rows.append(r)
    mixed = base * 1e4
    rows.append(mixed)
    alternating = torch.tensor([h if i % 2 else -h for i in range(n)], dtype=torch.float64)
    rows.append(alternating)
    if n >= 2:
        two_inf = base.clone()
        two_inf[0] = two_inf[-1] = INF
        rows.append(two_inf)
        inf_and_nan = base.clone()
        inf_and_nan[0], inf_and_nan[-1] = -INF, NAN
        rows.append(inf_and_nan)
    return torch.stack(rows).to(dtype)


@device_param
@pytest.mark.parametrize("n", [1, 5, 33, 1000])
@dtype_param
@name_param
def test_special_values(name, dtype, n, device):
    x = _special_rows(n, dtype).to(device)
    for t, dim in ((x, -1), (x.t().contiguous(), 0)):
        g = randn(t.shape, dtype, device, scale=1.0)
        y_ref, gx_ref = reference(name, t, dim, None, g, wide=False)
        y, gx = run(ours("op", name, dim), t, g)
        for what, a, b in (("forward", y, y_ref), ("backward", gx, gx_ref)):
            # Element for element: NaN where torch has NaN, finite where torch is finite.
            bad = (a.isnan() != b.isnan()) | (a.isfinite() != b.isfinite())
            assert not bad.any(), (
                f"{name} {dtype} n={n} dim={dim} {what}: NaN/finite mismatch at {bad.nonzero()[:4].tolist()}: "
                f"ours {a[bad][:4].tolist()} torch {b[bad][:4].tolist()}")
            assert_close(a, b, equal_nan=True, msg=lambda m: f"{name} n={n} dim={dim} {what}: {m}")


@device_param
@pytest.mark.parametrize("dtype,h", [(torch.float32, 1e4), (torch.float32, 3e38), (torch.float16, 6e4),
                                     (torch.bfloat16, 3e38), (torch.float64, 1e308)],
                         ids=["f32-1e4", "f32-3e38", "f16-6e4", "bf16-3e38", "f64-1e308"])
@name_param
def test_huge_magnitudes_stay_finite(name, dtype, h, device):
    """Rows of +-h with ordinary values: the max-subtracted forms stay finite where torch's do."""
    x = torch.tensor([[h, -h, 1.0, 0.0], [-h, -h, -h, 0.0], [h, h, 0.5, -h], [1.0, 2.0, -h, 3.0]],
                     dtype=torch.float64).to(dtype=dtype, device=device)
    for dim in (-1, 0):
        y_ref, _ = reference(name, x, dim, wide=False)
        y = _op(name)(x, dim)
        assert not (y_ref.isfinite() & ~y.isfinite()).any(), f"{name} dim={dim}: ours {y}, torch {y_ref}"
        assert_close(y, y_ref, equal_nan=True)


@pytest.mark.parametrize("dtype", HALF, ids=["f16", "bf16"])
def test_half_log_softmax_no_less_accurate_than_torch(dtype):
    """Where torch's half-type CPU log_softmax rounds an intermediate (see the module
    docstring), fusedact's error against float64 is at most torch's own."""
    for n in (2, 7, 16, 33, 100):
        x = randn((256, n), dtype)
        exact = F.log_softmax(x.double(), -1)
        ours_err = (_op("log_softmax")(x, -1).double() - exact).abs().max().item()
        torch_err = (F.log_softmax(x, -1).double() - exact).abs().max().item()
        assert ours_err <= torch_err, f"n={n}: ours {ours_err:.3g}, torch {torch_err:.3g}"


# --------------------------------------------------------------------------------------
# gradcheck, gradgradcheck, opcheck


@device_param
@pytest.mark.parametrize("shape,dim", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1)], ids=["dim-1", "dim0", "3d-dim1"])
@name_param
def test_gradcheck(name, shape, dim, device):
    x = randn(shape, torch.float64, device, scale=2.0).requires_grad_()
    fn = lambda t: _op(name)(t, dim)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))
    fn = lambda t: _fa(name)(t, dim, dtype=torch.float64)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))


@device_param
@pytest.mark.parametrize("dim", [-1, 0])
@name_param
def test_backward_op_gradcheck(name, dim, device):
    x = randn((4, 5), torch.float64, device, scale=2.0)
    y = _op(name)(x, dim).detach().requires_grad_()
    g = randn((4, 5), torch.float64, device).requires_grad_()
    fn = lambda gy, out: _backward_op(name)(gy, out, dim)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (g, y))
    assert torch.autograd.gradgradcheck(fn, (g, y))


def _opcheck_cases():
    cases = []
    for name in NAMES:
        for variant in ("dim-1", "dim0", "3d-dim1", "scalar", "dtype-f64", "bf16-dtype-f32", "i64-dtype-f32",
                        "backward", "backward-dim0"):
            cases.append(pytest.param(name, variant, id=f"{name}-{variant}"))
    return cases


@device_param
@pytest.mark.parametrize("name,variant", _opcheck_cases())
def test_opcheck(name, variant, device):
    def r(shape, dtype=torch.float32):
        return randn(shape, dtype, device, scale=2.0).requires_grad_()

    if variant.startswith("backward"):
        dim = 0 if variant == "backward-dim0" else -1
        y = _op(name)(randn((3, 5), torch.float32, device), dim).requires_grad_()
        torch.library.opcheck(_backward_op(name).default, (r((3, 5)), y, dim))
        return
    args = {
        "dim-1": (r((3, 5)), -1),
        "dim0": (r((3, 5)), 0),
        "3d-dim1": (r((2, 3, 4)), 1),
        "scalar": (r(()), 0),
        "dtype-f64": (r((3, 5)), -1, torch.float64),
        "bf16-dtype-f32": (r((3, 5), torch.bfloat16), -1, torch.float32),
        "i64-dtype-f32": (_input_of(torch.int64, (3, 5), device), -1, torch.float32),
    }[variant]
    torch.library.opcheck(_op(name).default, args)


# --------------------------------------------------------------------------------------
# fusedact.functional / fusedact.nn interface


@name_param
def test_functional_signature_is_torchs(name):
    def params(fn):
        return [(p.name, p.default, p.kind) for p in inspect.signature(fn).parameters.values()]

    assert params(_fa(name)) == params(TORCH_F[name])


@name_param
def test_module_interface_is_torchs(name):
    ours_cls, theirs_cls = _fn_module(name), getattr(torch.nn, MODULES[name])
    for args, kwargs in (((), {}), ((1,), {}), ((), {"dim": -1}), ((), {"dim": None})):
        a, b = ours_cls(*args, **kwargs), theirs_cls(*args, **kwargs)
        assert repr(a) == repr(b)
        assert a.dim == b.dim
        assert list(a.parameters()) == [] and dict(a.state_dict()) == {}


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4), (2, 3, 4, 5)],
                         ids=["0d", "1d", "2d", "3d", "4d"])
@pytest.mark.parametrize("api", ["functional", "nn"])
@name_param
def test_implicit_dim_as_torch(name, api, shape):
    """dim=None: torch's deprecated implicit dim (0 for 0-, 1- and 3-dim inputs, else 1)
    with its warning, same message and same attributed file."""
    x = randn(shape)

    def call(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = fn(x)
        return y, [(str(w.message), w.category, os.path.basename(w.filename)) for w in caught]

    if api == "functional":
        y, w = call(lambda t: _fa(name)(t))
        y_ref, w_ref = call(lambda t: TORCH_F[name](t))
    else:
        y, w = call(_fn_module(name)())
        y_ref, w_ref = call(getattr(torch.nn, MODULES[name])())
    assert w == w_ref
    assert_close(y, y_ref)


@name_param
def test_functional_positional_arguments(name):
    x = randn((4, 6))
    assert_close(_fa(name)(x, 0, 3, torch.float64), TORCH_F[name](x, 0, 3, torch.float64))
    assert_close(_fa(name)(input=x, dim=1), TORCH_F[name](input=x, dim=1))


@requires_cuda
@pytest.mark.parametrize("in_dtype", [torch.float16, torch.bfloat16, torch.float32], ids=["f16", "bf16", "f32"])
@name_param
def test_cuda_autocast_as_torch(name, in_dtype):
    """CUDA autocast runs the ops in float32 without dtype= (torch's fp32_set_opt_dtype)."""
    x = randn((4, 33), in_dtype, "cuda")
    for dtype in (None, torch.float64):
        with torch.autocast("cuda", dtype=torch.float16):
            y = _op(name)(x, -1, dtype)
            y_fa = _fa(name)(x, -1, dtype=dtype)
            y_ref = TORCH_F[name](x, -1, dtype=dtype)
        assert y.dtype == y_ref.dtype and y_fa.dtype == y_ref.dtype
        assert_close(y, y_ref)
        assert_close(y_fa, y_ref)


# --------------------------------------------------------------------------------------
# torch.compile


def test_compile_fullgraph_matches_eager_and_torch():
    """One compiled function over the three ops (dims -1, 0, 1 and dtype=), fullgraph=True
    (a graph break raises), forward and backward vs eager fusedact and vs torch."""

    def ours_fn(x):
        return (_fa("softmax")(x, -1), _fa("log_softmax")(x, dim=0),
                _fa("softmin")(x, 1, dtype=torch.float64), _fa("log_softmax")(x, -1, dtype=torch.float64))

    def torch_fn(x):
        return (F.softmax(x, -1), F.log_softmax(x, dim=0), F.softmin(x, 1, dtype=torch.float64),
                F.log_softmax(x, -1, dtype=torch.float64))

    x = randn((6, 33))
    grads = [randn(y.shape, y.dtype, scale=1.0) for y in torch_fn(x)]

    def fwd_bwd(fn):
        leaf = x.detach().requires_grad_()
        outs = fn(leaf)
        (gx,) = torch.autograd.grad(outs, leaf, grads)
        return [o.detach() for o in outs], gx

    expected = fwd_bwd(torch_fn)
    eager = fwd_bwd(ours_fn)
    torch._dynamo.reset()
    compiled = torch.compile(ours_fn, fullgraph=True, dynamic=False)
    got = fwd_bwd(compiled)
    got_again = fwd_bwd(compiled)
    assert_close(eager, expected, equal_nan=True)
    assert_close(got, eager, equal_nan=True)
    assert_close(got_again, expected, equal_nan=True)


# --------------------------------------------------------------------------------------
# torch.func.vmap


class _NoFallback:
    """Fails unless every fusedact op ran as one batched call (a batching rule records the
    op twice: the vmap-level call and the rule's call; torch's per-sample fallback once
    more per sample; batch sizes here are >= 3)."""

    def __enter__(self):
        self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self.profiler.__enter__()

    def __exit__(self, *exc):
        self.profiler.__exit__(*exc)
        if exc[0] is None:
            counts = {e.key: e.count for e in self.profiler.key_averages() if e.key.startswith("fusedact::")}
            assert counts, "no fusedact op ran"
            assert all(c <= 2 for c in counts.values()), f"per-sample vmap fallback ran: {counts}"


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("in_dim", [0, 2])
@pytest.mark.parametrize("api", ["op", "functional"])
@name_param
def test_vmap(name, api, in_dim, dim):
    x = randn((3, 4, 5), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(ours(api, name, dim), in_dims=in_dim)(x)
    expected = torch.func.vmap(lambda t: TORCH_F[name](t, dim), in_dims=in_dim)(x)
    assert_close(got, expected)


@name_param
def test_vmap_scalar_samples_and_dtype(name):
    x = randn((5,), torch.float32)
    for dim in (0, -1):
        got = torch.func.vmap(lambda t: _fa(name)(t, dim, dtype=torch.float64))(x)
        assert_close(got, torch.func.vmap(lambda t: TORCH_F[name](t, dim, dtype=torch.float64))(x))
    x = randn((4, 6), torch.bfloat16)
    got = torch.func.vmap(lambda t: _op(name)(t, -1, torch.float32), in_dims=1)(x)
    assert_close(got, torch.func.vmap(lambda t: TORCH_F[name](t, -1, dtype=torch.float32), in_dims=1)(x))


@pytest.mark.parametrize("dim", [0, -1])
@name_param
def test_vmap_backward_op(name, dim):
    """X_backward under vmap, grad_output batched (dim 1), output not, vs one direct call."""
    x = randn((4, 6), torch.float64)
    y = _op(name)(x, dim)
    g = randn((4, 3, 6), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(lambda a, b: _backward_op(name)(a, b, dim), in_dims=(1, None))(g, y)
    expected = torch.stack([torch_backward_data(name, g[:, i], y, dim, torch.float64) for i in range(3)])
    assert_close(got, expected)


@name_param
def test_vmap_of_grad(name):
    x, w = randn((5, 7), torch.float64), randn((7,), torch.float64)

    def per_sample_grad(fn):
        return torch.func.vmap(torch.func.grad(lambda t: (fn(t) * w).sum()))(x)

    assert_close(per_sample_grad(lambda t: _op(name)(t, -1)), per_sample_grad(lambda t: TORCH_F[name](t, -1)))
    assert_close(torch.func.jacrev(lambda t: _op(name)(t, 0))(x[0]),
                 torch.func.jacrev(lambda t: TORCH_F[name](t, 0))(x[0]))


# --------------------------------------------------------------------------------------
# Determinism (CPU)


def _bits(t):
    return t.contiguous().view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _assert_bitwise(a, b, what):
    assert a.shape == b.shape and a.dtype == b.dtype, what
    diff = _bits(a) != _bits(b)
    assert not diff.any(), (f"{what}: {int(diff.sum())} of {diff.numel()} elements differ bitwise, first at "
                            f"{diff.nonzero()[:4].tolist()}: {a[diff][:4].tolist()} vs {b[diff][:4].tolist()}")


def _det_input(shape, dtype, seed=0):
    """6 x standard normal with special values (-inf, +inf, NaN, huge) in a few places."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=torch.float64) * 6
    flat = x.view(-1)
    where = torch.randint(0, flat.numel(), (max(1, flat.numel() // 997),), generator=gen)
    special = torch.tensor([-INF, INF, NAN, 1e30, -1e30, 60.0, -60.0], dtype=torch.float64)
    flat[where] = special[torch.arange(where.numel()) % len(special)]
    return x.to(dtype)


def _fwd_bwd_op(name, x, dim, g):
    return run(lambda t: _op(name)(t, dim), x, g)


def _prefix_check(name, dtype, dim, counts):
    """f(x[:n]) == f(x)[:n] for the rows of `dim`, forward and backward: dim -1 takes a prefix
    of the rows of a (97, L) tensor, dim 0 a prefix of the columns of an (L, 97) tensor (the
    rows along dim 0, which a non-last-dim kernel runs side by side in SIMD lanes)."""
    for length in (33, 4097):
        x = _det_input((97, length), dtype)
        g = _det_input((97, length), dtype, seed=1).nan_to_num(0.0, 0.0, 0.0).clamp(-3, 3)
        if dim == 0:
            x, g = x.t().contiguous(), g.t().contiguous()
        full = _fwd_bwd_op(name, x, dim, g)
        for n in counts:
            idx = (slice(None), slice(0, n)) if dim == 0 else (slice(0, n),)
            part = _fwd_bwd_op(name, x[idx].contiguous(), dim, g[idx].contiguous())
            for a, b, what in zip(part, full, ("forward", "backward")):
                _assert_bitwise(a, b[idx], f"{name} {dtype} dim {dim}: {n} of 97 rows of {length} {what}")


@pytest.mark.parametrize("dim", [-1, 0])
@dtype_param
@name_param
def test_prefix_rows_bitwise(name, dtype, dim):
    counts = (2, 3, 7, 9, 17, 33, 96)
    _prefix_check(name, dtype, dim, counts if dim == 0 else (1,) + counts)


@dtype_param
@name_param
def test_single_row_along_dim0_close(name, dtype):
    """The one-row case of test_prefix_rows_bitwise along dim 0: an (L, 1) input, whose row
    along dim 0 is contiguous, vs the same row inside an (L, 97) input. Deliberately not
    bitwise: the (L, 1) row runs the contiguous-row kernel (SIMD along the row) and the
    (L, 97) rows the column kernel (a row per SIMD lane), which sum in different orders; both
    sum pairwise, so the two agree within the dtype's tolerance."""
    for length in (33, 4097):
        x = _det_input((length, 97), dtype)
        g = _det_input((length, 97), dtype, seed=1).nan_to_num(0.0, 0.0, 0.0).clamp(-3, 3)
        full = _fwd_bwd_op(name, x, 0, g)
        one = _fwd_bwd_op(name, x[:, :1].contiguous(), 0, g[:, :1].contiguous())
        for a, b, what in zip(one, full, ("forward", "backward")):
            torch.testing.assert_close(a, b[:, :1], equal_nan=True,
                                       msg=lambda m: f"{name} {dtype} {length} {what}: {m}")


@dtype_param
@name_param
def test_thread_counts_bitwise(name, dtype):
    """1 vs 2 intra-op threads: bitwise the same, forward and backward."""
    cases = [((64, 4097), -1), ((4097, 64), 0), ((2, 70000), -1), ((16387, 33), -1), ((3, 5000, 7), 1)]
    before = torch.get_num_threads()
    try:
        for shape, dim in cases:
            x = _det_input(shape, dtype)
            g = _det_input(shape, dtype, seed=1).nan_to_num(0.0, 0.0, 0.0).clamp(-3, 3)
            results = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                results.append(_fwd_bwd_op(name, x, dim, g))
            for a, b, what in zip(*results, ("forward", "backward")):
                _assert_bitwise(a, b, f"{name} {dtype} {shape} dim {dim} {what}, 1 vs 2 threads")
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------------------
# Vectorized vs scalar CPU kernels

_SCALAR_CHILD = textwrap.dedent("""
    import os, sys
    os.environ["FUSEDACT_FILL_OUTPUTS_WITH_NAN"] = "1"
    import torch
    import fusedact
    assert os.environ.get("ATEN_CPU_CAPABILITY") == "default"
    capability = torch.backends.cpu.get_cpu_capability()
    cases = torch.load(sys.argv[1])
    out = []
    for name, dim, x, g in cases:
        leaf = x.detach().requires_grad_()
        y = getattr(torch.ops.fusedact, name)(leaf, dim)
        (gx,) = torch.autograd.grad(y, leaf, g)
        out.append((y.detach(), gx))
    torch.save({"capability": capability, "results": out}, sys.argv[2])
""")


def _scalar_path_cases():
    cases = []
    shapes = [((5, 33), -1), ((3, 4097), -1), ((2, 70000), -1), ((4097, 3), 0), ((9, 1000), 0), ((4, 5, 6), 1),
              ((7, 17), -1), ((17, 7), 0)]
    for dtype in DTYPES:
        for name in NAMES:
            for shape, dim in shapes:
                x = randn(shape, dtype)
                g = randn(shape, dtype, scale=1.0)
                cases.append((name, dim, x, g))
            for n in (5, 33):
                x = _special_rows(n, dtype)
                for t, dim in ((x, -1), (x.t().contiguous(), 0)):
                    cases.append((name, dim, t, randn(t.shape, dtype, scale=1.0)))
    return cases


def test_vectorized_matches_scalar_path(tmp_path):
    """fusedact under ATEN_CPU_CAPABILITY=default (its scalar kernels), in a child process,
    vs this process (the SIMD kernels), within the dtype's assert_close tolerance."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "DEFAULT":
        pytest.skip("this process already runs torch's DEFAULT CPU capability (no SIMD kernels to compare)")
    cases = _scalar_path_cases()
    inputs, outputs = tmp_path / "inputs.pt", tmp_path / "outputs.pt"
    torch.save(cases, inputs)
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
    python_dir = str(pathlib.Path(fusedact.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([python_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    proc = subprocess.run([sys.executable, "-c", _SCALAR_CHILD, str(inputs), str(outputs)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    child = torch.load(outputs)
    assert child["capability"] == "DEFAULT", child["capability"]
    for (name, dim, x, g), (y_scalar, gx_scalar) in zip(cases, child["results"]):
        y, gx = _fwd_bwd_op(name, x, dim, g)
        where = f"{name} {x.dtype} {tuple(x.shape)} dim {dim}"
        assert_close(y, y_scalar, equal_nan=True, msg=lambda m: f"{where} forward, SIMD vs scalar: {m}")
        assert_close(gx, gx_scalar, equal_nan=True, msg=lambda m: f"{where} backward, SIMD vs scalar: {m}")
