"""gradcheck and gradgradcheck in float64 for every op and parameter set, packed and split,
and the row-wise ops over each of their dims.

Samples stay at least 1e-2 away from the op's kinks (registry `kinks`), where the finite
differences of gradcheck are not meaningful.
"""

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from conftest import DEVICES, GATED_CASES, ROWWISE_CASES, UNARY_CASES, away_from_kinks, randn


def _sample(spec, shape, device, params):
    x = away_from_kinks(spec, randn(shape, torch.float64, device, scale=2.0), params)
    for k in spec.kinks_at(params):
        assert ((x - k).abs() >= 1e-2).all()
    return x.requires_grad_()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_gradcheck(spec, params, device):
    x = _sample(spec, (4, 5), device, params)
    fn = lambda t: spec.op(t, **params)  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dim", [-1, 0])
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_packed_gradcheck(spec, params, dim, device):
    x = _sample(spec, (4, 6), device, params)
    fn = lambda t: spec.op(t, **params, dim=dim)  # noqa: E731
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_split_gradcheck(spec, params, device):
    gate = _sample(spec, (3, 4), device, params)
    up = randn((3, 4), torch.float64, device, scale=2.0).requires_grad_()
    fn = lambda a, b: spec.op.split(a, b, **params)  # noqa: E731
    assert gradcheck(fn, (gate, up))
    assert gradgradcheck(fn, (gate, up))


# The backward ops are themselves differentiable ops: check them directly too, including
# the gradient with respect to grad_output.


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_unary_backward_op_gradcheck(spec, params, device):
    x = _sample(spec, (4, 5), device, params)
    g = randn((4, 5), torch.float64, device).requires_grad_()
    assert gradcheck(lambda gy, t: spec.backward_op(gy, t, **params), (g, x))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_gated_backward_op_gradcheck(spec, params, device):
    x = _sample(spec, (3, 8), device, params)
    g = randn((3, 4), torch.float64, device).requires_grad_()
    assert gradcheck(lambda gy, t: spec.backward_op(gy, t, **params, dim=-1), (g, x))
    gate = _sample(spec, (3, 4), device, params)
    up = randn((3, 4), torch.float64, device).requires_grad_()
    assert gradcheck(lambda gy, a, b: spec.backward_op.split(gy, a, b, **params), (g, gate, up))


# Row-wise ops (smooth: no kinks). Their backward takes the forward's output, which the
# backward op's gradcheck perturbs like any input (the backward formula is defined for any y).


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_rowwise_gradcheck(spec, params, device):
    x = randn((3, 4, 5), torch.float64, device, scale=2.0).requires_grad_()
    for dim in (params["dim"], 1, -2):
        fn = lambda t: spec.op(t, **{**params, "dim": dim})  # noqa: E731
        assert gradcheck(fn, (x,))
        assert gradgradcheck(fn, (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_rowwise_backward_op_gradcheck(spec, params, device):
    x = randn((3, 5), torch.float64, device, scale=2.0)
    y = spec.op(x, **params).detach().requires_grad_()
    g = randn((3, 5), torch.float64, device).requires_grad_()
    assert gradcheck(lambda gy, t: spec.backward_op(gy, t, params["dim"]), (g, y))
