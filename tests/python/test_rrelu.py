"""rrelu and fusedact.nn.RReLU: evaluation mode vs torch (leaky_relu with the mean slope),
training mode's random slopes (bounds, reproducibility under torch.manual_seed, the
backward using the same slopes), in-place, the module, gradcheck, compile, bad bounds.
(opcheck of the four ops: test_opcheck.py.)"""

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close

import fusedact.functional as FA
import fusedact.nn as FN
from conftest import DEVICES, DTYPE_IDS, DTYPES, away_from_kinks, randn, scalar_path
from fusedact.registry import get

SPEC = get("rrelu")
device_param = pytest.mark.parametrize("device", DEVICES)
BOUNDS = [(1.0 / 8, 1.0 / 3), (0.1, 0.6)]


def _value_and_grad(fn, x):
    x = x.detach().requires_grad_()
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), gx


@device_param
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("lower,upper", BOUNDS)
def test_eval_matches_torch(lower, upper, dtype, device):
    x = randn((3, 855), dtype, device)
    ours = _value_and_grad(lambda t: FA.rrelu(t, lower, upper, training=False), x)
    ref = _value_and_grad(lambda t: F.rrelu(t, lower, upper, training=False), scalar_path(x))
    assert_close(ours, ref, equal_nan=True)


@device_param
@pytest.mark.parametrize("lower,upper", BOUNDS)
def test_training_slopes_are_in_bounds_and_reused_by_backward(lower, upper, device):
    x = randn((64, 257), torch.float64, device)
    torch.manual_seed(1)
    y, gx = _value_and_grad(lambda t: FA.rrelu(t, lower, upper, training=True), x)
    negative = x < 0
    slopes = y[negative] / x[negative]
    assert slopes.min() >= lower and slopes.max() <= upper
    # Spread over the interval, not one slope: mean near the middle, both ends visited.
    assert abs(slopes.mean().item() - (lower + upper) / 2) < 0.02 * (upper - lower) + 1e-3
    assert slopes.min() < lower + 0.05 * (upper - lower) and slopes.max() > upper - 0.05 * (upper - lower)
    assert torch.equal(y[~negative], x[~negative])
    # The backward uses the slopes of the forward: dy/dx is the slope where x < 0, else 1.
    assert_close(gx[negative], slopes)
    assert torch.equal(gx[~negative], torch.ones_like(gx[~negative]))


@device_param
def test_training_is_reproducible_under_manual_seed(device):
    x = randn((5, 301), torch.float32, device)
    torch.manual_seed(7)
    first = FA.rrelu(x, training=True)
    torch.manual_seed(7)
    second = FA.rrelu(x, training=True)
    third = FA.rrelu(x, training=True)
    assert torch.equal(first, second)
    assert not torch.equal(second, third)


@device_param
def test_inplace_matches_out_of_place(device):
    x = randn((4, 99), torch.float32, device)
    for training in (False, True):
        torch.manual_seed(3)
        expected = FA.rrelu(x, 0.1, 0.6, training=training)
        y = x.clone()
        torch.manual_seed(3)
        returned = FA.rrelu(y, 0.1, 0.6, training=training, inplace=True)
        assert returned is y
        assert torch.equal(y, expected)


@device_param
def test_module_is_a_drop_in_for_torch(device):
    ours, theirs = FN.RReLU(0.1, 0.3), torch.nn.RReLU(0.1, 0.3)
    assert repr(ours) == repr(theirs)
    assert repr(FN.RReLU(inplace=True)) == repr(torch.nn.RReLU(inplace=True))
    x = randn((6, 10), torch.float32, device)
    ours.eval(), theirs.eval()
    assert_close(_value_and_grad(ours, x), _value_and_grad(theirs, scalar_path(x)))
    ours.train()
    y = ours(x)
    negative = x < 0
    slopes = y[negative] / x[negative]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3


@device_param
def test_with_noise_matches_its_definition(device):
    x = randn((3, 855), torch.float32, device)
    noise = torch.rand_like(x)
    ours = _value_and_grad(lambda t: torch.ops.fusedact.rrelu_with_noise(t, noise), x)
    ref = _value_and_grad(lambda t: torch.where(t > 0, t, noise * t), x)
    assert_close(ours, ref)


@device_param
def test_gradcheck(device):
    x = away_from_kinks(SPEC, randn((4, 5), torch.float64, device, scale=2.0), {})
    x.requires_grad_()
    assert gradcheck(lambda t: FA.rrelu(t, 0.1, 0.6, training=False), (x,))
    assert gradgradcheck(lambda t: FA.rrelu(t, 0.1, 0.6, training=False), (x,))
    noise = torch.rand_like(x)
    assert gradcheck(lambda t: torch.ops.fusedact.rrelu_with_noise(t, noise), (x,))
    assert gradgradcheck(lambda t: torch.ops.fusedact.rrelu_with_noise(t, noise), (x,))


def test_compiles_fullgraph_in_both_modes():
    x = randn((4, 33), torch.float32, "cpu")
    module = FN.RReLU(0.1, 0.6)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)
    module.eval()
    assert_close(compiled(x), F.rrelu(x, 0.1, 0.6, training=False))
    module.train()
    y = compiled(x)
    negative = x < 0
    slopes = y[negative] / x[negative]
    assert slopes.min() >= 0.1 and slopes.max() <= 0.6
    assert torch.equal(y[~negative], x[~negative])


@device_param
def test_bad_bounds_and_dtypes_raise(device):
    x = randn((3, 4), torch.float32, device)
    for training in (False, True):
        with pytest.raises(RuntimeError, match="fusedact::rrelu.*'lower'"):
            FA.rrelu(x, 0.5, 0.25, training=training)
    with pytest.raises(RuntimeError, match="fusedact::rrelu.*input"):
        FA.rrelu(torch.ones(3, 4, dtype=torch.int64, device=device), training=True)
