"""torch.compile(fullgraph=True) of a small module per op and parameter set (CPU, inductor)
matches eager forward and backward.

One compile per op/parameter set: gated modules call the packed op and the split overload
in the same graph; row-wise modules the op, fusedact.functional and fusedact.nn. dynamic=False so each module compiles exactly once.
"""

import pytest
import torch
from torch.testing import assert_close

import fusedact.functional as FA
import fusedact.nn as FN
from conftest import GATED_CASES, ROWWISE_CASES, UNARY_CASES, randn


class UnaryModule(torch.nn.Module):
    def __init__(self, spec, params):
        super().__init__()
        self.spec, self.params = spec, params

    def forward(self, x):
        return (self.spec.op(x, **self.params),)


class GatedModule(torch.nn.Module):
    def __init__(self, spec, params):
        super().__init__()
        self.spec, self.params = spec, params

    def forward(self, x, gate, up):
        packed = self.spec.op(x, **self.params, dim=-1)
        split = self.spec.op.split(gate, up, **self.params)
        return packed, split


class RowwiseModule(torch.nn.Module):
    """The op (its registry parameters: dim, and dtype in one set), the functional on another
    dim and the nn module, in one graph."""

    def __init__(self, spec, params):
        super().__init__()
        self.spec, self.params = spec, params
        self.module = getattr(FN, spec.module)(dim=0)

    def forward(self, x):
        op = self.spec.op(x, **self.params)
        functional = getattr(FA, self.spec.name)(x, dim=1, dtype=self.params.get("dtype"))
        return op, functional, self.module(x)


def _run(module, inputs, grads):
    leaves = [t.detach().requires_grad_() for t in inputs]
    outs = module(*leaves)
    in_grads = torch.autograd.grad(outs, leaves, grads)
    return [o.detach() for o in outs], list(in_grads)


def _check(module, inputs):
    eager_out = module(*inputs)
    grads = [randn(o.shape, o.dtype) for o in eager_out]
    expected = _run(module, inputs, grads)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    got = _run(compiled, inputs, grads)
    # A second call reuses the compiled graph and must agree too.
    got_again = _run(compiled, inputs, grads)
    assert_close(got, expected, equal_nan=True)
    assert_close(got_again, expected, equal_nan=True)


@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_compile_unary(spec, params):
    _check(UnaryModule(spec, params), [randn((4, 33))])


@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_compile_gated(spec, params):
    _check(GatedModule(spec, params), [randn((4, 34)), randn((4, 17)), randn((4, 17))])


@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_compile_rowwise(spec, params):
    _check(RowwiseModule(spec, params), [randn((4, 33))])


@pytest.mark.parametrize("spec,params", [c for c in ROWWISE_CASES if c.values[1] == {"dim": -1}])
def test_compile_rowwise_implicit_dim(spec, params):
    """dim=None (torch's deprecated implicit dim) compiles with fullgraph=True: the deprecation
    warning, which Dynamo cannot trace, is given in eager mode only."""
    class Implicit(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = getattr(FN, spec.module)()

        def forward(self, x):
            return (self.module(x),)

    for shape in ((4, 33), (3, 4, 5)):  # implicit dim 1 and 0
        _check(Implicit(), [randn(shape)])
