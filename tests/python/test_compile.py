"""torch.compile(fullgraph=True) of a small module per op and parameter set (CPU, inductor)
matches eager forward and backward.

One compile per op/parameter set: gated modules call the packed op and the split overload
in the same graph. dynamic=False so each module compiles exactly once.
"""

import pytest
import torch
from torch.testing import assert_close

from conftest import GATED_CASES, UNARY_CASES, randn


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


def _run(module, inputs, grads):
    leaves = [t.detach().requires_grad_() for t in inputs]
    outs = module(*leaves)
    in_grads = torch.autograd.grad(outs, leaves, grads)
    return [o.detach() for o in outs], list(in_grads)


def _check(module, inputs):
    eager_out = module(*inputs)
    grads = [randn(o.shape) for o in eager_out]
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
