"""fusedact.nn.Swish(beta, learnable) and the weighted op learnable_swish(input, weight) vs
the composition x * sigmoid(beta * x): values, input and beta gradients (single and per
channel), gradcheck, the parameter and state_dict, torch.compile. (opcheck: test_opcheck.py.)"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck
from torch.testing import assert_close

import fusedact.functional as FA
import fusedact.nn as FN
from conftest import DEVICES, randn

device_param = pytest.mark.parametrize("device", DEVICES)


def _grads(fn, x, w, g):
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    y = fn(x, w)
    return (y.detach(),) + torch.autograd.grad(y, (x, w), g)


def _reference(x, w):
    shape = [1] * x.dim()
    if w.numel() > 1:
        shape[1] = w.numel()
    return x * torch.sigmoid(w.reshape(shape if w.numel() > 1 else []) * x)


@device_param
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("w_shape", [(1,), (4,)], ids=["single", "per-channel"])
@pytest.mark.parametrize("x_shape", [(3, 4, 55), (3, 4, 150)], ids=["rows-220", "rows-600"])
def test_matches_composition(x_shape, w_shape, dtype, device):
    # rows of 600: the kernel reads one row of expanded weights for every row (>= 512)
    x = randn(x_shape, dtype, device)
    w = randn(w_shape, dtype, device, scale=0.7)
    g = randn(x.shape, dtype, device)
    y, gx, gw = _grads(FA.learnable_swish, x, w, g)
    ry, rgx, rgw = _grads(_reference, x, w, g)
    assert_close((y, gx), (ry, rgx))
    # grad_w sums 165 to 660 mixed-sign terms that cancel: two float32 sums of them differ
    # by their own rounding, so the check is against the float64 value, and fusedact's
    # error must be no larger than torch's float32 composition's.
    exact = _grads(_reference, x.double(), w.double(), g.double())[2]
    assert (gw.double() - exact).abs().max() <= (rgw.double() - exact).abs().max() + 1e-12


@device_param
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("w_shape", [(1,), (4,)], ids=["single", "per-channel"])
def test_weight_gradient_formula(w_shape, dtype, device):
    """With grad_output 1 every term x^2*s*(1-s) is >= 0, so the sum does not cancel and
    default tolerances against the float64 composition are meaningful."""
    x = randn((3, 4, 55), dtype, device)
    w = randn(w_shape, dtype, device, scale=0.7)
    g = torch.ones_like(x)
    gw = _grads(FA.learnable_swish, x, w, g)[2]
    exact = _grads(_reference, x.double(), w.double(), g.double())[2]
    assert_close(gw, exact.to(dtype))


@device_param
def test_gradcheck(device):
    x = randn((3, 4, 5), torch.float64, device).requires_grad_()
    for w in (randn((1,), torch.float64, device), randn((4,), torch.float64, device)):
        w.requires_grad_()
        assert gradcheck(FA.learnable_swish, (x, w))
        assert gradgradcheck(FA.learnable_swish, (x, w))


@device_param
def test_module(device):
    x = randn((6, 10), torch.float32, device)
    fixed = FN.Swish(beta=1.5)
    assert list(fixed.parameters()) == [] and repr(fixed) == "Swish(beta=1.5)"
    assert_close(fixed(x), FA.swish(x, 1.5))

    learned = FN.Swish(beta=1.5, learnable=True).to(device)
    assert list(learned.state_dict()) == ["beta"] and repr(learned) == "Swish(beta=1.5, learnable=True)"
    assert_close(learned(x), FA.swish(x, 1.5))
    learned(x).square().sum().backward()
    beta = torch.tensor([1.5], device=device, requires_grad=True)
    _reference(x, beta).square().sum().backward()
    assert_close(learned.beta.grad, beta.grad)
    # It trains: one SGD step moves beta.
    torch.optim.SGD(learned.parameters(), lr=0.1).step()
    assert learned.beta.item() != 1.5


def test_compiles_fullgraph():
    torch._dynamo.reset()
    module = FN.Swish(beta=0.8, learnable=True)
    compiled = torch.compile(module, fullgraph=True)
    x = randn((4, 33), torch.float32, "cpu")
    compiled(x).sum().backward()
    beta = torch.tensor([0.8], requires_grad=True)
    ref = _reference(x, beta)
    ref.sum().backward()
    assert_close(compiled(x), ref.detach())
    assert_close(module.beta.grad, beta.grad)
