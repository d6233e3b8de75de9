"""prelu (the weighted shape class) and fusedact.nn.PReLU vs torch.nn.functional.prelu and
torch.nn.PReLU: values, input and weight gradients, special values, gradcheck, the module's
parameter and state_dict, torch.compile and bad weights. (opcheck: test_opcheck.py.)"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close

import fusedact.nn as FN
from conftest import DEVICES, DTYPE_IDS, DTYPES, away_from_kinks, randn, scalar_path
from fusedact.registry import get

SPEC = get("prelu")
device_param = pytest.mark.parametrize("device", DEVICES)

# (input shape, weight shape): per channel (dim 1) and single weights, 1-D and 0-dim inputs.
CASES = {
    "3x5-per-channel": ((3, 5), (5,)),
    "3x5-single": ((3, 5), (1,)),
    "3x5-scalar-weight": ((3, 5), ()),
    "2x4x7": ((2, 4, 7), (4,)),
    "2x6x5x3": ((2, 6, 5, 3), (6,)),
    "855x3-single": ((855, 3), (1,)),
    # Rows of >= 512 elements: the kernel reads one row of expanded weights for every row.
    "3x4x200": ((3, 4, 200), (4,)),
    "5x600-per-channel": ((5, 600), (600,)),
    "2x3x17x31-single": ((2, 3, 17, 31), (1,)),
    "1d": ((7,), (1,)),
    "0d": ((), (1,)),
    "empty": ((0, 4), (4,)),
}


def _grads(fn, x, w, g):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    y = fn(x, w)
    gx, gw = torch.autograd.grad(y, (x, w), g)
    return y.detach(), gx, gw


@device_param
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(CASES))
def test_prelu_matches_torch(case, dtype, device):
    x_shape, w_shape = CASES[case]
    x = randn(x_shape, dtype, device)
    w = randn(w_shape, dtype, device, scale=0.5)
    g = randn(x_shape, dtype, device)
    ours = _grads(SPEC.op, x, w, g)
    ref = _grads(F.prelu, scalar_path(x), w, scalar_path(g))
    assert_close(ours, ref, equal_nan=True)
    direct = SPEC.backward_op(g, x, w)
    assert_close(tuple(direct), ref[1:], equal_nan=True)


@device_param
@pytest.mark.parametrize("layout", ["transposed", "channels_last", "strided"])
def test_prelu_any_layout(layout, device):
    base = randn((2, 6, 5, 4), torch.float32, device)
    x = {
        "transposed": base.transpose(2, 3),
        "channels_last": base.contiguous(memory_format=torch.channels_last),
        "strided": base[:, :, ::2],
    }[layout]
    w = randn((6,), torch.float32, device, scale=0.5)
    g = randn(x.shape, torch.float32, device)
    assert_close(_grads(SPEC.op, x, w, g), _grads(F.prelu, x, w, g))
    if layout == "channels_last":
        assert SPEC.op(x, w).is_contiguous(memory_format=torch.channels_last)


@device_param
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_prelu_special_values(dtype, device):
    values = [math.nan, math.inf, -math.inf, -0.0, 0.0, 1e4, -1e4, 88.8, -88.8, 20.0, -20.0, 0.5, -0.5]
    w = torch.tensor([0.25], dtype=dtype, device=device)
    for v in values:  # one element at a time: torch's scalar path, the CUDA kernel's formulas
        x = torch.tensor([v], dtype=dtype, device=device)
        y, gx, gw = _grads(SPEC.op, x, w, torch.ones_like(x))
        ry, rgx, rgw = _grads(F.prelu, x, w, torch.ones_like(x))
        assert_close((y, gx, gw), (ry, rgx, rgw), equal_nan=True, msg=f"at x = {v}")
        # The sign of a NaN is not specified: torch's own bfloat16 kernel gives +NaN for one
        # element (scalar path) and -NaN (0xFFFF) for 64 (its SIMD conversion), as ours does.
        if not math.isnan(v):
            assert torch.signbit(y) == torch.signbit(ry), f"sign of prelu({v})"


@device_param
@pytest.mark.parametrize("case", ["3x5-per-channel", "3x5-single", "2x4x7", "1d"])
def test_prelu_gradcheck(case, device):
    x_shape, w_shape = CASES[case]
    x = away_from_kinks(SPEC, randn(x_shape, torch.float64, device, scale=2.0), {})
    w = randn(w_shape, torch.float64, device, scale=0.5)
    args = (x.requires_grad_(), w.requires_grad_())
    assert gradcheck(SPEC.op, args)
    assert gradgradcheck(SPEC.op, args)


@device_param
def test_prelu_module_is_a_drop_in_for_torch(device):
    torch.manual_seed(0)
    theirs = torch.nn.PReLU(num_parameters=4, init=0.1).to(device)
    ours = FN.PReLU(num_parameters=4, init=0.1).to(device)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight"]
    with torch.no_grad():
        theirs.weight.copy_(randn((4,), torch.float32, device, scale=0.5))
    ours.load_state_dict(theirs.state_dict())
    x = randn((3, 4, 5), torch.float32, device)
    y, y_ref = ours(x), theirs(x)
    assert_close(y, y_ref)
    g = randn(x.shape, torch.float32, device)
    (gw,) = torch.autograd.grad(y, ours.weight, g)
    (gw_ref,) = torch.autograd.grad(y_ref, theirs.weight, g)
    assert_close(gw, gw_ref)
    assert FN.PReLU().weight.tolist() == [0.25]


def test_prelu_compiles_fullgraph():
    torch._dynamo.reset()
    module = FN.PReLU(3)
    compiled = torch.compile(module, fullgraph=True)
    x = randn((4, 3, 5), torch.float32, "cpu")
    leaf = x.detach().requires_grad_()
    y = compiled(leaf)
    y.sum().backward()
    ref = torch.nn.PReLU(3)
    x_ref = x.detach().requires_grad_()
    ref(x_ref).sum().backward()
    assert_close(y, F.prelu(x, module.weight.detach()))
    assert_close(leaf.grad, x_ref.grad)
    assert_close(module.weight.grad, ref.weight.grad)


@device_param
def test_prelu_bad_weights_raise(device):
    x = randn((3, 5), torch.float32, device)
    cases = [
        (randn((1, 5), torch.float32, device), "weight"),  # 2-D weight
        (randn((4,), torch.float32, device), "weight"),  # neither 1 nor size(1) elements
        (randn((5,), torch.float64, device), "dtype"),  # dtype mismatch
    ]
    for w, word in cases:
        with pytest.raises(RuntimeError) as info:
            SPEC.op(x, w)
        message = str(info.value)
        assert "fusedact::prelu" in message and word in message, message
    with pytest.raises(RuntimeError, match="fusedact::prelu.*input"):
        SPEC.op(torch.ones(3, 5, dtype=torch.int64, device=device), torch.ones(5, device=device))
    with pytest.raises(RuntimeError, match="fusedact::prelu.*weight"):
        SPEC.op(randn((3,), torch.float32, device), randn((3,), torch.float32, device))
