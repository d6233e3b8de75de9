"""Bad input raises an error naming the op and the argument, and never crashes the process
or corrupts data."""

import pytest
import torch
from torch.testing import assert_close

import fusedact
from conftest import (
    DEVICES,
    OPS,
    GATED_CASES,
    GATED_SPECS,
    INPLACE_SPECS,
    UNARY_CASES,
    assert_raises_named,
    expected_overloads,
    randn,
    requires_cuda,
    schema_args,
)

device_param = pytest.mark.parametrize("device", DEVICES)
BAD_DTYPES = pytest.mark.parametrize(
    "bad_dtype", [torch.int64, torch.int32, torch.uint8, torch.bool], ids=["i64", "i32", "u8", "bool"]
)


def _bad(shape, dtype, device):
    return torch.ones(shape, dtype=dtype, device=device)


# --------------------------------------------------------------------------------------
# Integer and bool input


@device_param
@BAD_DTYPES
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_rejects_integer_and_bool(spec, params, bad_dtype, device):
    x = _bad((3, 4), bad_dtype, device)
    # Ops torch runs on integers accept them (test_integer_inputs_match_torch), bool never;
    # the ones torch promotes to float run (test_integer_inputs_promoted_as_torch).
    if not (spec.name in TORCH_ACCEPTS_INTEGERS and bad_dtype != torch.bool) and not _promoted(spec.name, bad_dtype):
        assert_raises_named(lambda: spec.op(x, **params), spec.name, "input")
    # Backward ops take floating tensors only: integer tensors carry no gradient.
    assert_raises_named(
        lambda: spec.backward_op(_bad((3, 4), bad_dtype, device), x, **params),
        spec.name + "_backward",
        ("grad_output", "output" if spec.grad_from_output else "input"),
    )


# Ops torch.nn.functional runs on integer tensors too.
TORCH_ACCEPTS_INTEGERS = {"relu", "relu6", "hardtanh", "threshold"}
INTEGER_DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]
# Ops torch computes in the default float dtype for integer input: name -> bool promoted too.
TORCH_PROMOTES_INTEGERS = {"sigmoid": True, "tanh": True, "softsign": False, "tanhshrink": False}


def _promoted(name, dtype):
    return name in TORCH_PROMOTES_INTEGERS and (dtype != torch.bool or TORCH_PROMOTES_INTEGERS[name])


@device_param
@pytest.mark.parametrize("default_dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("dtype", INTEGER_DTYPES + [torch.bool], ids=lambda d: str(d)[6:])
@pytest.mark.parametrize("name", sorted(TORCH_PROMOTES_INTEGERS))
def test_integer_inputs_promoted_as_torch(name, dtype, default_dtype, device):
    """torch.sigmoid/tanh and F.softsign/tanhshrink on integer (sigmoid, tanh: and bool)
    input: the default float dtype, the values of the op on the converted input; where torch
    raises (softsign, tanhshrink of bool), fusedact raises naming the op.
    Values stay clear of the integer type's ends: torch's softsign is the composite
    x / (abs(x) + 1) with abs(x) + 1 in the integer type, which wraps there (uint8 255 gives
    inf, int8 -128 gives 1.008); fusedact computes in float (255/256, -128/129), a deliberate
    difference."""
    x = torch.tensor([-100, -7, -2, 0, 1, 2, 5, 100], dtype=torch.int64).to(dtype=dtype, device=device)
    torch_fn = getattr(torch.nn.functional, name)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        if not _promoted(name, dtype):
            with pytest.raises(RuntimeError):
                torch_fn(x)
            assert_raises_named(lambda: getattr(torch.ops.fusedact, name)(x), name, "input")
            return
        expected = torch_fn(x)
        for ours in (getattr(torch.ops.fusedact, name)(x), getattr(fusedact.functional, name)(x)):
            assert ours.dtype == expected.dtype == default_dtype
            assert_close(ours, expected)
    finally:
        torch.set_default_dtype(previous)


# Ops torch runs on complex tensors too (the others reject complex: test_bad_inputs.py).
TORCH_ACCEPTS_COMPLEX = {"sigmoid", "tanh", "silu", "softsign", "tanhshrink"}


def _torch_complex_reference(name):
    return getattr(torch, name) if name in ("sigmoid", "tanh") else getattr(torch.nn.functional, name)


@device_param
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("name", sorted(TORCH_ACCEPTS_COMPLEX))
def test_complex_inputs_match_torch(name, dtype, device):
    """Complex input where torch takes it: torch's values, and torch's gradient (the conjugate
    Wirtinger convention) for a complex grad_output, with a complex128 gradcheck; silu raises
    for complex input that requires grad, as torch's, and runs in place (silu_)."""
    x = torch.tensor([1 + 1j, -2 + 0.5j, 0j, 3 - 2j, -0.25 - 4j, 0.5 + 0.01j], dtype=dtype, device=device)
    reference = _torch_complex_reference(name)
    ours = getattr(torch.ops.fusedact, name)
    for fn in (ours, getattr(fusedact.functional, name)):
        assert_close(fn(x), reference(x))
    grad_output = torch.tensor([0.5 - 1j, 2 + 0j, -1 + 1j, 0.25j, 1 + 3j, -2 - 2j], dtype=dtype, device=device)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    if name == "silu":  # torch: "silu does not support automatic differentiation for ... complex"
        with pytest.raises(RuntimeError, match="does not support automatic differentiation"):
            reference(a)
        assert_raises_named(lambda: ours(b), name, "input")
        y = x.clone()
        torch.ops.fusedact.silu_(y)
        assert_close(y, reference(x))
        return
    (expected,) = torch.autograd.grad(reference(a), a, grad_output)
    (got,) = torch.autograd.grad(ours(b), b, grad_output)
    assert_close(got, expected)
    if dtype == torch.complex128:
        assert torch.autograd.gradcheck(ours, (x.clone().requires_grad_(),))


@device_param
@pytest.mark.parametrize("dtype", INTEGER_DTYPES, ids=lambda d: str(d)[6:])
@pytest.mark.parametrize(
    "spec,params", [c for c in UNARY_CASES if c.values[0].name in TORCH_ACCEPTS_INTEGERS]
)
def test_integer_inputs_match_torch(spec, params, dtype, device):
    """Same values and dtype as torch, out of place and in place; bounds and values convert
    by truncation (uint8 wraps); uint8 with a negative bound is rejected as torch does."""
    x = torch.tensor([-128, -7, -3, -1, 0, 1, 2, 5, 6, 7, 127], dtype=torch.int64)
    x = x.to(dtype=dtype, device=device)
    torch_fn = getattr(torch.nn.functional, spec.name)
    try:
        expected = torch_fn(x, **params)
    except RuntimeError as error:
        if "without overflow" in str(error):  # a bound or value the dtype cannot hold
            assert_raises_named(lambda: spec.op(x, **params), spec.name, tuple(params))
            return
        assert "unsigned" in str(error), error  # torch: hardtanh on uint8, negative limits
        assert_raises_named(lambda: spec.op(x, **params), spec.name, "input")
        return
    ours = spec.op(x, **params)
    assert ours.dtype == expected.dtype and torch.equal(ours, expected), (ours, expected)
    y = x.clone()
    getattr(torch.ops.fusedact, spec.name + "_")(y, **params)
    assert torch.equal(y, expected)


@device_param
@BAD_DTYPES
@pytest.mark.parametrize("spec", INPLACE_SPECS)
def test_inplace_rejects_integer_and_bool(spec, bad_dtype, device):
    if spec.name in TORCH_ACCEPTS_INTEGERS and bad_dtype != torch.bool:
        pytest.skip("torch accepts integer input for this op: test_integer_inputs_match_torch")
    x = _bad((3, 4), bad_dtype, device)
    before = x.clone()
    inplace = getattr(torch.ops.fusedact, spec.name + "_")
    assert_raises_named(lambda: inplace(x, **spec.params), (spec.name + "_", spec.name), "input")
    assert torch.equal(x, before)


@device_param
@BAD_DTYPES
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_rejects_integer_and_bool(spec, params, bad_dtype, device):
    x = _bad((3, 8), bad_dtype, device)
    half = _bad((3, 4), bad_dtype, device)
    assert_raises_named(lambda: spec.op(x, **params, dim=-1), spec.name, "input")
    assert_raises_named(lambda: spec.op.split(half, half, **params), spec.name, ("gate", "up"))
    assert_raises_named(
        lambda: spec.backward_op(half, x, **params, dim=-1),
        spec.name + "_backward",
        ("grad_output", "input"),
    )
    assert_raises_named(
        lambda: spec.backward_op.split(half, half, half, **params),
        spec.name + "_backward",
        ("grad_output", "gate", "up"),
    )


def _every_overload():
    cases = []
    for spec in OPS:
        params = dict(spec.param_sets[0])
        for name, overload in expected_overloads(spec):
            cases.append(pytest.param(spec, params, name, overload, id=f"{name}.{overload}"))
    return cases


@device_param
@pytest.mark.parametrize("bad_dtype", [torch.int64, torch.bool], ids=["i64", "bool"])
@pytest.mark.parametrize("spec,params,name,overload", _every_overload())
def test_every_overload_rejects_integer_and_bool(spec, params, name, overload, bad_dtype, device):
    """All tensor arguments integer/bool, for every overload (double backward included)."""
    if bad_dtype != torch.bool and spec.name in TORCH_ACCEPTS_INTEGERS and name.rstrip("_") == spec.name:
        pytest.skip("torch accepts integer input for this op: test_integer_inputs_match_torch")
    if name == spec.name and _promoted(spec.name, bad_dtype):
        pytest.skip("torch promotes this input to float for this op: test_integer_inputs_promoted_as_torch")
    op = getattr(getattr(torch.ops.fusedact, name), overload)
    tensor_args = [a.name for a in op._schema.arguments if str(a.type) == "Tensor"]
    args = schema_args(spec, params, op, lambda shape: _bad(shape, bad_dtype, device))
    before = [a.clone() for a in args if isinstance(a, torch.Tensor)]
    op_names = (name, name.rstrip("_")) if name.endswith("_") else (name,)
    assert_raises_named(lambda: op(*args), op_names, tuple(tensor_args))
    after = [a for a in args if isinstance(a, torch.Tensor)]
    assert all(torch.equal(x, y) for x, y in zip(before, after))


# --------------------------------------------------------------------------------------
# The gated dim


@device_param
@pytest.mark.parametrize("shape,dim", [((4, 5), -1), ((5, 4), 0), ((3, 7, 2), 1), ((1,), 0)])
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_odd_dim_raises(spec, params, shape, dim, device):
    x = randn(shape, torch.float32, device)
    assert_raises_named(lambda: spec.op(x, **params, dim=dim), spec.name, ("input", "dim"))
    out_shape = list(shape)
    out_shape[dim] //= 2
    g = randn(out_shape, torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op(g, x, **params, dim=dim),
        spec.name + "_backward",
        ("input", "dim", "grad_output"),
    )


@device_param
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_zero_dim_input_raises(spec, params, device):
    x = randn((), torch.float32, device)
    assert_raises_named(lambda: spec.op(x, **params), spec.name, ("input", "dim"))
    assert_raises_named(lambda: spec.op(x, **params, dim=0), spec.name, ("input", "dim"))


@device_param
@pytest.mark.parametrize("dim", [2, -3, 100])
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_dim_out_of_range_raises(spec, params, dim, device):
    x = randn((4, 6), torch.float32, device)
    assert_raises_named(lambda: spec.op(x, **params, dim=dim), spec.name, "dim")
    g = randn((4, 3), torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op(g, x, **params, dim=dim), spec.name + "_backward", "dim"
    )


# --------------------------------------------------------------------------------------
# approximate


@device_param
@pytest.mark.parametrize("bad", ["foo", "", "Tanh", "None"])
def test_gelu_bad_approximate_raises(bad, device):
    x = randn((3, 4), torch.float32, device)
    ops = torch.ops.fusedact
    assert_raises_named(lambda: ops.gelu(x, approximate=bad), "gelu", "approximate")
    assert_raises_named(
        lambda: ops.gelu_backward(torch.ones_like(x), x, approximate=bad), "gelu_backward", "approximate"
    )


@device_param
@pytest.mark.parametrize("bad", ["foo", "", "Tanh"])
def test_geglu_bad_approximate_raises(bad, device):
    x = randn((3, 8), torch.float32, device)
    h = randn((3, 4), torch.float32, device)
    ops = torch.ops.fusedact
    assert_raises_named(lambda: ops.geglu(x, approximate=bad), "geglu", "approximate")
    assert_raises_named(lambda: ops.geglu.split(h, h, approximate=bad), "geglu", "approximate")
    assert_raises_named(
        lambda: ops.geglu_backward(h, x, approximate=bad), "geglu_backward", "approximate"
    )
    assert_raises_named(
        lambda: ops.geglu_backward.split(h, h, h, approximate=bad), "geglu_backward", "approximate"
    )


# --------------------------------------------------------------------------------------
# gate / up of the split overloads


@device_param
@pytest.mark.parametrize(
    "gate_shape,up_shape", [((3, 4), (3, 5)), ((3, 4), (4, 3)), ((2, 3, 4), (3, 4, 2)), ((7,), (8,))]
)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_split_shape_mismatch_raises(spec, params, gate_shape, up_shape, device):
    gate = randn(gate_shape, torch.float32, device)
    up = randn(up_shape, torch.float32, device)
    assert_raises_named(lambda: spec.op.split(gate, up, **params), spec.name, ("gate", "up"))
    g = randn(gate_shape, torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op.split(g, gate, up, **params),
        spec.name + "_backward",
        ("gate", "up", "grad_output"),
    )


@device_param
@pytest.mark.parametrize(
    "gate_dtype,up_dtype",
    [
        (torch.float32, torch.float64),
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float16),
        (torch.float64, torch.bfloat16),
    ],
    ids=["f32-f64", "f16-f32", "bf16-f16", "f64-bf16"],
)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_split_dtype_mismatch_raises(spec, params, gate_dtype, up_dtype, device):
    gate = randn((3, 4), gate_dtype, device)
    up = randn((3, 4), up_dtype, device)
    assert_raises_named(lambda: spec.op.split(gate, up, **params), spec.name, ("gate", "up"))
    g = randn((3, 4), gate_dtype, device)
    assert_raises_named(
        lambda: spec.backward_op.split(g, gate, up, **params),
        spec.name + "_backward",
        ("gate", "up", "grad_output"),
    )


@requires_cuda
@pytest.mark.parametrize("order", ["gate_cuda", "up_cuda"])
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_split_device_mismatch_raises(spec, params, order):
    gate = randn((3, 4), torch.float32, "cuda" if order == "gate_cuda" else "cpu")
    up = randn((3, 4), torch.float32, "cpu" if order == "gate_cuda" else "cuda")
    assert_raises_named(lambda: spec.op.split(gate, up, **params), spec.name, ("gate", "up"))
    g = torch.ones_like(gate)
    assert_raises_named(
        lambda: spec.backward_op.split(g, gate, up, **params),
        spec.name + "_backward",
        ("gate", "up", "grad_output"),
    )


@requires_cuda
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_backward_device_mismatch_raises(spec, params):
    x = randn((3, 4), torch.float32, "cuda")
    g = randn((3, 4), torch.float32, "cpu")
    assert_raises_named(
        lambda: spec.backward_op(g, x, **params),
        spec.name + "_backward",
        ("grad_output", "output" if spec.grad_from_output else "input"),
    )


# --------------------------------------------------------------------------------------
# grad_output of the wrong shape


@device_param
@pytest.mark.parametrize("g_shape", [(3,), (4, 3), (3, 5), (2, 3, 5)], ids=str)
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_backward_grad_output_wrong_shape_raises(spec, params, g_shape, device):
    x = randn((3, 4), torch.float32, device)
    g = randn(g_shape, torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op(g, x, **params), spec.name + "_backward", "grad_output"
    )


@device_param
@pytest.mark.parametrize("g_shape", [(3, 8), (3, 5), (4, 4), (3,)], ids=str)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_backward_grad_output_wrong_shape_raises(spec, params, g_shape, device):
    x = randn((3, 8), torch.float32, device)  # output (3, 4)
    g = randn(g_shape, torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op(g, x, **params, dim=-1), spec.name + "_backward", "grad_output"
    )
    gate, up = randn((3, 4), torch.float32, device), randn((3, 4), torch.float32, device)
    assert_raises_named(
        lambda: spec.backward_op.split(g, gate, up, **params), spec.name + "_backward", "grad_output"
    )


@device_param
@pytest.mark.parametrize("spec", GATED_SPECS)
def test_process_survives_many_bad_calls(spec, device):
    """A burst of bad calls leaves the library working (no corrupted state)."""
    x = randn((4, 6), torch.float32, device)
    for _ in range(20):
        with pytest.raises(Exception):
            spec.op(randn((4, 5), torch.float32, device))
    good = spec.op(x)
    assert good.shape == (4, 3) and torch.isfinite(good).all()
