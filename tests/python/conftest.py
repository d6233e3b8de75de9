"""Shared set-up and helpers of the fusedact Python tests.

Every test runs with FUSEDACT_FILL_OUTPUTS_WITH_NAN=1: each output the ops allocate starts
filled with NaN, so an element a kernel forgets to write shows up as a mismatch against
torch. The library reads the variable once, at the first op call, so it is set here before
fusedact is imported.
"""

import os
import tempfile

os.environ["FUSEDACT_FILL_OUTPUTS_WITH_NAN"] = "1"
# A fresh inductor cache per test session: inductor's on-disk caches key on the traced graph,
# which names a fusedact op but not what the op does, so a graph compiled against an older
# build (e.g. one whose tanh_backward took the input) would be replayed against this one.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="fusedact-inductor-")

import math  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import fusedact  # noqa: E402,F401  (registers torch.ops.fusedact.*)
from fusedact.registry import OPS  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
NO_CUDA_REASON = "CUDA is not available on this machine (torch.cuda.is_available() is False)"

DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA_REASON)),
]
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
DTYPE_IDS = ["f32", "f64", "f16", "bf16"]

requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA_REASON)


def _param_id(spec, params):
    if not params:
        return spec.name
    return spec.name + "-" + "-".join(f"{k}={v}" for k, v in params.items())


def op_param_cases(kind=None):
    """pytest params (spec, params) for every registry op and parameter set."""
    cases = []
    for spec in OPS:
        if kind is not None and spec.kind != kind:
            continue
        for params in spec.param_sets:
            cases.append(pytest.param(spec, dict(params), id=_param_id(spec, params)))
    return cases


UNARY_CASES = op_param_cases("unary")
GATED_CASES = op_param_cases("gated")
ROWWISE_CASES = op_param_cases("rowwise")
INPLACE_SPECS = [pytest.param(s, id=s.name) for s in OPS if s.inplace]
GATED_SPECS = [pytest.param(s, id=s.name) for s in OPS if s.kind == "gated"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def randn(shape, dtype=torch.float32, device="cpu", scale=3.0):
    """Values spread over the interesting range of the activations (about -9..9)."""
    return (torch.randn(shape, dtype=torch.float64) * scale).to(dtype=dtype, device=device)


def scalar_path(t):
    """The values of t, laid out so that torch's CPU kernels take their scalar path.

    torch's CPU elementwise kernels run a vectorized loop (SLEEF functions) on inputs that
    are contiguous in the innermost dim and a scalar loop otherwise, and the two can differ,
    at special values (F.gelu of a long tensor of inf is nan, of one inf is inf) and in
    ill-conditioned regions (the tanh-GELU derivative near x = -5.1 is 0 on one path and
    -1.1e-6 on the other). DESIGN.md makes torch's CUDA kernel the reference where torch's
    paths disagree, and the CUDA kernel uses the scalar path's formulas. A copy whose
    innermost stride is 2 elements cannot take the vectorized loop, so CPU references are
    computed on it. On CUDA the tensor itself is returned.
    """
    if t.device.type != "cpu":
        return t
    buf = torch.empty((*t.shape, 2), dtype=t.dtype, device=t.device)
    view = buf[..., 0]
    view.copy_(t)
    return view


# --------------------------------------------------------------------------------------
# Gated-op helpers: the halves of a packed input, following the op's convention.
# narrow() rather than chunk(): chunk() of a 0-size dim does not give two halves.


def halves(spec, x, dim=-1):
    """(gate, up) views of a packed gated input."""
    n = x.size(dim)
    assert n % 2 == 0
    first = x.narrow(dim, 0, n // 2)
    second = x.narrow(dim, n // 2, n // 2)
    return (first, second) if spec.gated_half == "first" else (second, first)


def pack(spec, gate, up, dim=-1):
    """The packed tensor whose halves() are (gate, up)."""
    parts = (gate, up) if spec.gated_half == "first" else (up, gate)
    return torch.cat(parts, dim=dim)


HALF_DTYPES = (torch.float16, torch.bfloat16)


def cuda_zero_sign(spec_name, y):
    """torch's CPU softshrink gives -0.0 for negative inputs in [-lambd, lambd], its CUDA
    kernel (the reference, DESIGN.md) +0.0 (`... : scalar_t(0)` in its source; not run here,
    no GPU). y + 0.0 turns -0.0 into +0.0 and changes nothing else."""
    return y + 0.0 if spec_name == "softshrink" and y.device.type == "cpu" else y

# Ops whose torch built-in cannot be differentiated twice, so there is no torch reference;
# their double backward is checked by gradgradcheck (test_gradcheck.py) instead.
TORCH_HAS_NO_DOUBLE_BACKWARD = {
    "hardsigmoid": "torch raises 'derivative for aten::hardsigmoid_backward is not implemented'; "
    "covered by gradgradcheck",
}


def opmath(t):
    """Gated references for the half types: DESIGN.md has fusedact compute float16/bfloat16 in
    float32 and round once, while torch's composition (F.silu(a) * b) rounds the activation
    to the half type before the product (sigmoid(-20) is 0 in float16, 2.06e-9 in float32).
    The reference is therefore the same composition run in float32 on the same half-type
    values, rounded to the half type; test_gated_half_no_worse_than_torch checks that this
    never leaves fusedact further from the exact value than torch's own half composition."""
    return t.float() if t.dtype in HALF_DTYPES else t


def gelu_cdf_exact(x, approximate="none"):
    """GELU's x-multiplier without the cancellation of torch's forms (for float64 references):
    exact erfc(-x/sqrt2)/2 (torch: (1 + erf(x/sqrt2))/2, 0 for x < -8.3 in float64 where it
    is not), tanh sigmoid(2u) (torch: (1 + tanh(u))/2; 1 + tanh(u) = 2*sigmoid(2u))."""
    if approximate == "tanh":
        return torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def gelu_exact(x, approximate="none"):
    return x * gelu_cdf_exact(x, approximate)


def exact_reference(spec, params):
    """spec's reference for float64 'exact' values: the registry's, except gelu and geglu,
    which use gelu_exact."""
    approximate = params.get("approximate", "none")
    if spec.name == "gelu":
        return lambda x: gelu_exact(x, approximate)
    if spec.name == "geglu":
        return lambda gate, up: gelu_exact(gate, approximate) * up
    return lambda *t: spec.reference(*t, **params)


def reference_input(t, spec, params):
    """What the torch reference of `spec` runs on, for an input or grad_output `t`.

    - tanh-GELU (gelu and geglu with approximate='tanh'): float64, a deliberate choice.
      torch evaluates 0.5*x*(1 + tanh(u)) and its derivative with 1 - tanh(u)^2 in the
      input's dtype; both cancel for x < -4. fusedact evaluates x*sigmoid(2u) (functors.h),
      which does not. Measured on 200001 points of [-15, -4] in float32 (2026-11-22): torch's
      f' is off the float64 value by up to 1.04e-6, fusedact's by 3.8e-10; the gated backward
      multiplies that by `up` and grad_output, past the float32 tolerance. So both are
      compared with the float64 reference rounded to the dtype.
    - gated ops and compositions in half types: float32 (opmath above).
    """
    if spec.name in ("gelu", "geglu") and params.get("approximate") == "tanh":
        return t.double()
    return opmath(t) if spec.kind == "gated" or spec.composite else t


def ref_packed(spec, x, params, dim=-1):
    gate, up = halves(spec, x, dim)
    return spec.reference(gate, up, **params)


def ref_split(spec, gate, up, params):
    return spec.reference(gate, up, **params)


def call_packed(spec, x, params, dim=-1):
    return spec.op(x, **params, dim=dim)


def call_split(spec, gate, up, params):
    return spec.op.split(gate, up, **params)


def away_from_kinks(spec, x, params, margin=1e-2):
    """Move samples closer than 2*margin to a kink of the op to 3*margin from it."""
    for k in spec.kinks_at(params):
        near = (x - k).abs() < 2 * margin
        side = torch.where(x >= k, 1.0, -1.0).to(x.dtype)
        x = torch.where(near, k + side * 3 * margin, x)
    return x


# --------------------------------------------------------------------------------------
# Arguments for any overload, built from its schema by argument name, so tests that sweep
# every overload (opcheck, dtype errors) follow the schemas the extension registers.

def expected_overloads(spec):
    """(op name, overload name) pairs the contract says exist for this spec."""
    if spec.kind == "unary":
        names = [(spec.name, "default"), (spec.name + "_backward", "default")]
        names.append((spec.name + "_double_backward", "default"))
        if spec.inplace:
            names.append((spec.name + "_", "default"))
        if spec.inplace_grad_from_result:
            names += [(spec.name + "_result_backward", "default"),
                      (spec.name + "_result_double_backward", "default")]
    elif spec.kind == "weighted":
        names = [(spec.name, "default"), (spec.name + "_backward", "default")]
    elif spec.kind == "rowwise":  # no in-place form, no X_double_backward (rowwise_api)
        names = [(spec.name, "default"), (spec.name + "_backward", "default")]
    elif spec.kind == "random":
        names = [(spec.name, "default"), (spec.name + "_", "default")]
        names += [(spec.name + "_with_noise", "default"), (spec.name + "_with_noise_backward", "default")]
    else:
        names = []
        for n in (spec.name, spec.name + "_backward", spec.name + "_double_backward"):
            names += [(n, "default"), (n, "split")]
    return names


SCHEMA_UNARY_SHAPE = (3, 5)
SCHEMA_PACKED_SHAPE = (3, 8)  # gated dim last, halves (3, 4)
SCHEMA_HALF_SHAPE = (3, 4)


def _schema_tensor_shape(spec, packed, arg_name):
    if spec.kind == "weighted":
        return (SCHEMA_UNARY_SHAPE[1],) if arg_name == "weight" else SCHEMA_UNARY_SHAPE
    if spec.kind in ("unary", "random", "rowwise"):  # rowwise: input, grad_output, output
        return SCHEMA_UNARY_SHAPE
    if arg_name.startswith("grad_grad_"):
        arg_name = arg_name[len("grad_grad_") :]
    if arg_name in ("input", "self"):
        return SCHEMA_PACKED_SHAPE if packed else None
    if arg_name in ("gate", "up", "grad_output"):
        return SCHEMA_HALF_SHAPE
    return None


def schema_args(spec, params, op, make):
    """Positional arguments for the OpOverload `op` of `spec`: tensors from make(shape),
    `dim` from `params` (the rowwise ops') or -1, the op's parameters from `params`; trailing
    defaults are left out."""
    schema = op._schema
    packed = op._overloadname == "default"
    args = []
    for a in schema.arguments:
        if str(a.type) == "Tensor":
            shape = _schema_tensor_shape(spec, packed, a.name)
            assert shape is not None, f"unexpected tensor argument {a.name!r} in {schema}"
            args.append(make(shape))
        elif a.name == "dim":
            args.append(params.get("dim", -1))
        elif a.name in params:
            args.append(params[a.name])
        elif a.has_default_value():
            break
        else:
            raise AssertionError(f"no value for argument {a.name!r} of {schema}")
    return tuple(args)


# --------------------------------------------------------------------------------------
# Errors


ACCEPTED_ERRORS = (RuntimeError, ValueError, TypeError, IndexError)


def assert_raises_named(fn, op_names, arg_names):
    """fn() raises an error whose text names `fusedact::<one of op_names>` and one of
    `arg_names`."""
    if isinstance(op_names, str):
        op_names = (op_names,)
    if isinstance(arg_names, str):
        arg_names = (arg_names,)
    with pytest.raises(ACCEPTED_ERRORS) as info:
        fn()
    msg = str(info.value)
    # \b: 'fusedact::gelu' must not be satisfied by 'fusedact::gelu_backward'.
    assert any(re.search(rf"fusedact::{re.escape(n)}\b", msg) for n in op_names), (
        f"error does not name fusedact::{' or '.join(op_names)}: {msg!r}"
    )
    assert any(re.search(rf"\b{re.escape(a)}\b", msg) for a in arg_names), (
        f"error does not name any of the arguments {arg_names}: {msg!r}"
    )
    return info.value


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test over tensors of more than 2^31 elements (minutes, ~13 GiB)")


# Known differences from torch that the reliability suites found and that are not fixed yet,
# by test id (file::name[params]); each becomes a strict xfail with its reason, so a fix
# shows up as an unexpected pass (then delete its entry). Measured 2026-11-22, CPU.
KNOWN_DIFFERENCES = {
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = KNOWN_DIFFERENCES.get(f"{os.path.basename(item.fspath)}::{item.name}")
        if reason is not None:
            item.add_marker(pytest.mark.xfail(strict=True, reason=reason))
