"""Values and first derivatives exactly at the kinks of the piecewise activations.

DESIGN.md section 2: fusedact gives torch's values of the derivative exactly at kinks
(relu'(0) = 0, leaky_relu'(0) = negative_slope, elu'(0) = alpha, hardtanh'(edges) = 0, ...).
Each row below is (op, params, x, f'(x), f(x)), exact values (selu'(0) = scale * alpha is
a rounded product and is compared with the dtype's default assert_close tolerance).

Three checks per row, dtype, device and shape:
- fusedact's op at exactly x: value and derivative (autograd, grad_output 1) are the row's;
- torch's built-in (or composition) at exactly x has the row's derivative, which pins the
  row to torch's behaviour;
- fusedact's value is bit for bit torch's value, sign of zero included.

The bit-for-bit value check computes torch's CPU value on conftest.scalar_path's layout,
the suite's convention (DESIGN.md: torch's CUDA kernel is the reference where torch's paths
disagree). Where that matters here: torch's CPU vectorized softshrink gives +0.0 at
-lambd, its scalar loop -0.0 (x * 0); its CUDA kernel returns +0.0 (scalar_t(0)), so on
CUDA the check compares with +0.0, where fusedact's functor (x * 0) gives -0.0.

Two shapes: a 0-dim tensor (torch's CPU kernels take their scalar loop) and 67 copies of x
(their vectorized loop plus a scalar tail; fusedact's vector paths too).

Known differences of torch (reported, not hidden; marked xfail(strict=True), so a torch
that changes them turns the mark into a failure):
- torch's hardsigmoid backward multiplies by the constant `1.0f / 6.0f` in float64 too
  (measured on CPU; cuda/ActivationHardsigmoidKernel.cu has the same constant), so its
  float64 hardsigmoid'(0) is float32(1/6) = 0.1666666716337204, not 1/6; fusedact gives 1/6.
- torch's celu backward (derivatives.yaml: elu_backward(grad, alpha, 1, 1.0/alpha.toFloat(),
  ...)) rounds alpha to float32 in the input scale, so in float64 with an alpha float32
  cannot hold (0.8) its celu'(0) is 0.8 / float32(0.8) = 0.999999985098839, not 1.
- torch's CUDA hardsigmoid/hardswish forward multiplies by the same float32 constant in
  float64 (CUDA float64 hardsigmoid(3) = 6 * float32(1/6) = 1.0000000298023224), while its
  CPU kernels divide by 6; fusedact divides by 6 on both. (From the ATen source; not run
  on a GPU when this file was written.)
"""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from conftest import DEVICES, cuda_zero_sign, scalar_path
from fusedact.registry import OPS

# SELU's constants (torch.nn.SELU's documentation); selu'(0) = scale * alpha.
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _rows():
    """(op, params, x, f'(x), f(x))."""
    rows = [
        ("relu", {}, 0.0, 0.0, 0.0),
        ("relu6", {}, 0.0, 0.0, 0.0),
        ("relu6", {}, 6.0, 0.0, 6.0),
    ]
    for slope in (0.01, 0.2, -0.5):
        rows.append(("leaky_relu", {"negative_slope": slope}, 0.0, slope, 0.0))
    for alpha in (1.0, 0.8, 2.5):
        rows.append(("elu", {"alpha": alpha}, 0.0, alpha, 0.0))
    rows.append(("selu", {}, 0.0, SELU_SCALE * SELU_ALPHA, 0.0))
    for alpha in (1.0, 0.8, 2.5):
        rows.append(("celu", {"alpha": alpha}, 0.0, 1.0, 0.0))
    for lo, hi in ((-1.0, 1.0), (0.0, 6.0), (-2.5, 0.5)):
        params = {"min_val": lo, "max_val": hi}
        rows.append(("hardtanh", params, lo, 0.0, lo))
        rows.append(("hardtanh", params, hi, 0.0, hi))
    rows += [
        ("hardsigmoid", {}, -3.0, 0.0, 0.0),
        ("hardsigmoid", {}, 3.0, 0.0, 1.0),
        ("hardsigmoid", {}, 0.0, 1.0 / 6.0, 0.5),
        # torch 2.11's values; older torch (before the hardswish backward fix) gave
        # hardswish'(-3) = -0.5 and hardswish'(3) = 1.5, as DESIGN.md section 2 still says.
        ("hardswish", {}, -3.0, 0.0, 0.0),
        ("hardswish", {}, 3.0, 1.0, 3.0),
        # Above the threshold (beta * x > threshold) softplus is x itself.
        ("softplus", {"beta": 1.0, "threshold": 20.0}, 25.0, 1.0, 25.0),
        ("softplus", {"beta": 2.0, "threshold": 5.0}, 3.0, 1.0, 3.0),
    ]
    # Hardshrink zeroes the closed interval [-lambd, lambd]; softshrink is 0 there too.
    for name in ("hardshrink", "softshrink"):
        for lambd in (0.5, 1.5):
            rows.append((name, {"lambd": lambd}, lambd, 0.0, 0.0))
            rows.append((name, {"lambd": lambd}, -lambd, 0.0, 0.0))
    rows += [
        # value where x <= threshold, so the threshold itself maps to value, slope 0.
        ("threshold", {"threshold": 0.5, "value": -2.0}, 0.5, 0.0, -2.0),
        ("threshold", {"threshold": 0.0, "value": 0.0}, 0.0, 0.0, 0.0),
        ("relu_squared", {}, 0.0, 0.0, 0.0),
        # Not in the original list: softsign's registry kink at 0 (its second derivative
        # jumps there); softsign'(0) = 1 / (1 + |0|)^2 = 1.
        ("softsign", {}, 0.0, 1.0, 0.0),
    ]
    return rows


ROWS = _rows()


def _row_id(row):
    name, params, x = row[:3]
    extra = "-".join(f"{k}={v}" for k, v in params.items())
    return f"{name}-{extra}-x={x}" if extra else f"{name}-x={x}"


DTYPES = [torch.float32, torch.float64]
DTYPE_IDS = ["f32", "f64"]
SHAPES = [(), (67,)]
SHAPE_IDS = ["0dim", "n67"]


def _torch_fn(name, params):
    """torch's built-in (or the composition for ops torch has no function for)."""
    if name == "relu_squared":
        return lambda x: torch.square(F.relu(x))
    fn = getattr(F, name)
    return lambda x: fn(x, **params)


def _fusedact_fn(name, params):
    op = getattr(torch.ops.fusedact, name)
    return lambda x: op(x, **params)


def _value_and_grad(fn, x, dtype, device, shape):
    t = torch.full(shape, x, dtype=dtype, device=device, requires_grad=True)
    y = fn(t)
    (g,) = torch.autograd.grad(y, t, torch.ones_like(y))
    return y.detach(), g


def _expected(value, dtype, device, shape):
    return torch.full(shape, value, dtype=dtype, device=device)


def _assert_exact(actual, expected, what):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, what
    assert torch.equal(actual, expected), (
        f"{what}: got {actual.flatten()[:3].tolist()}, expected {expected.flatten()[0].item()!r}"
    )


def _assert_derivative(actual, expected, name, what):
    if name == "selu":
        # scale * alpha is rounded once in Python and again in the kernel's arithmetic.
        assert_close(actual, expected, msg=lambda m: f"{what}: {m}")
    else:
        _assert_exact(actual, expected, what)


def _cases(xfails=None):
    """pytest params over device, dtype, shape and row; xfails(row, dtype, device) gives
    the reason of a known torch difference or None."""
    cases = []
    for dev in DEVICES:
        dev_marks = list(dev.marks) if hasattr(dev, "marks") else []
        device = dev.values[0] if hasattr(dev, "values") else dev
        for dtype, dtype_id in zip(DTYPES, DTYPE_IDS):
            for shape, shape_id in zip(SHAPES, SHAPE_IDS):
                for row in ROWS:
                    marks = list(dev_marks)
                    reason = xfails(row, dtype, device) if xfails else None
                    if reason is not None:
                        marks.append(pytest.mark.xfail(strict=True, reason=reason))
                    cases.append(
                        pytest.param(
                            device,
                            dtype,
                            shape,
                            row,
                            marks=marks,
                            id=f"{device}-{dtype_id}-{shape_id}-{_row_id(row)}",
                        )
                    )
    return cases


def _float32_rounds(v):
    return torch.tensor(v, dtype=torch.float32).item() != v


def _torch_grad_xfail(row, dtype, device):
    name, params, x = row[:3]
    if name == "celu" and dtype == torch.float64 and _float32_rounds(params["alpha"]):
        return (
            "torch's celu backward uses 1.0/alpha.toFloat() (derivatives.yaml), so its float64 "
            f"celu'(0) with alpha={params['alpha']} is alpha/float32(alpha), not 1 (fusedact: 1)"
        )
    if name == "hardsigmoid" and x == 0.0 and dtype == torch.float64:
        return (
            "torch's hardsigmoid backward multiplies by float32(1/6) also in float64, so its "
            "float64 hardsigmoid'(0) is 0.1666666716337204, not 1/6 (fusedact: 1/6)"
        )
    return None


def _torch_value_xfail(row, dtype, device):
    name, _, x, _, value = row
    if (
        device == "cuda"
        and dtype == torch.float64
        and name in ("hardsigmoid", "hardswish")
        and value != 0.0
    ):
        return (
            f"torch's CUDA {name} multiplies by float32(1/6) also in float64 "
            f"({name}({x}) is {value} times 1.0000000298...); fusedact divides by 6 exactly"
        )
    return None


@pytest.mark.parametrize("device,dtype,shape,row", _cases())
def test_fusedact_value_and_derivative_at_kink(device, dtype, shape, row):
    name, params, x, grad, value = row
    y, g = _value_and_grad(_fusedact_fn(name, params), x, dtype, device, shape)
    _assert_exact(y, _expected(value, dtype, device, shape), f"fusedact {name}{params}({x})")
    _assert_derivative(
        g, _expected(grad, dtype, device, shape), name, f"fusedact {name}{params}'({x})"
    )


@pytest.mark.parametrize("device,dtype,shape,row", _cases(_torch_grad_xfail))
def test_torch_derivative_at_kink(device, dtype, shape, row):
    """The row's expected derivative is torch's own (pins the table to torch)."""
    name, params, x, grad, _ = row
    _, g = _value_and_grad(_torch_fn(name, params), x, dtype, device, shape)
    _assert_derivative(
        g, _expected(grad, dtype, device, shape), name, f"torch {name}{params}'({x})"
    )


@pytest.mark.parametrize("device,dtype,shape,row", _cases(_torch_value_xfail))
def test_value_at_kink_is_torchs_bit_for_bit(device, dtype, shape, row):
    name, params, x = row[:3]
    ours, _ = _value_and_grad(_fusedact_fn(name, params), x, dtype, device, shape)
    ref = _torch_fn(name, params)(scalar_path(torch.full(shape, x, dtype=dtype, device=device)))
    ref = cuda_zero_sign(name, ref)  # the CUDA kernel's +0.0 (conftest)
    what = f"{name}{params}({x})"
    _assert_exact(ours, ref, what)
    # torch.equal treats -0.0 == 0.0 (e.g. leaky_relu(0, -0.5) is -0.0 in torch).
    assert torch.equal(torch.signbit(ours), torch.signbit(ref)), f"{what}: sign of zero differs"


def test_every_unary_kink_op_has_a_row():
    """Each unary registry op with kinks appears in the table (prelu and the gated reglu,
    whose kink is relu's, are not unary)."""
    with_rows = {row[0] for row in ROWS}
    missing = [s.name for s in OPS if s.kind == "unary" and s.kinks and s.name not in with_rows]
    assert not missing, f"unary ops with kinks but no row here: {missing}"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("beta,threshold", [(1.0, 20.0), (2.0, 5.0), (0.5, 5.0), (2.0, 20.0)])
def test_softplus_takes_torchs_branch_at_exactly_the_threshold(device, dtype, beta, threshold):
    """At beta * x == threshold torch still takes the smooth branch (the switch is a strict
    `beta * x > threshold`): in float64 softplus(20) = 20.000000002061153, not 20. The
    values agree within tolerance either way, so the branch is checked by whether the
    value is exactly x and the derivative exactly 1."""
    x = threshold / beta
    ours_y, ours_g = _value_and_grad(
        _fusedact_fn("softplus", {"beta": beta, "threshold": threshold}), x, dtype, device, ()
    )
    ref_y, ref_g = _value_and_grad(
        _torch_fn("softplus", {"beta": beta, "threshold": threshold}), x, dtype, device, ()
    )
    assert_close(ours_y, ref_y)
    assert_close(ours_g, ref_g)
    assert (ours_y.item() == x) == (ref_y.item() == x), (ours_y.item(), ref_y.item())
    assert (ours_g.item() == 1.0) == (ref_g.item() == 1.0), (ours_g.item(), ref_g.item())
