"""torch.func over the fusedact ops vs the same transforms over the torch built-ins:
vmap (batching rules, no per-sample fallback except the weighted ops; the row-wise ops with
their dim shifted past the batch dim), grad, jacrev,
their compositions, the backward ops and the in-place ops under vmap, and a
Hessian-vector product through a small model (double backward)."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import fusedact
import fusedact.functional as FA
from conftest import GATED_CASES, OPS, ROWWISE_CASES, UNARY_CASES, ref_packed, randn
from fusedact.registry import BY_NAME

ops = torch.ops.fusedact
WEIGHTED = [pytest.param(s, id=s.name) for s in OPS if s.kind == "weighted"]


class _NoFallback:
    """Fails unless every fusedact op ran as one batched call: under a batching rule the op
    is recorded twice (the vmap-level call and the rule's call on the whole batch), under
    torch's per-sample fallback once more per sample (batch sizes here are >= 3)."""

    def __enter__(self):
        self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        self.profiler.__enter__()

    def __exit__(self, *exc):
        self.profiler.__exit__(*exc)
        if exc[0] is None:
            counts = {e.key: e.count for e in self.profiler.key_averages() if e.key.startswith("fusedact::")}
            assert counts, "no fusedact op ran"
            assert all(c <= 2 for c in counts.values()), f"per-sample vmap fallback ran: {counts}"


def _unary_fns(spec, params):
    return (lambda t: spec.op(t, **params)), (lambda t: spec.reference(t, **params))


def _gated_fns(spec, params, dim):
    return (lambda t: spec.op(t, **params, dim=dim)), (lambda t: ref_packed(spec, t, params, dim))


# ---- vmap ----

@pytest.mark.parametrize("in_dim", [0, 1])
@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_vmap_unary(spec, params, in_dim):
    ours, theirs = _unary_fns(spec, params)
    x = randn((3, 4, 5), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(ours, in_dims=in_dim)(x)
    assert_close(got, torch.func.vmap(theirs, in_dims=in_dim)(x), equal_nan=True)


@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("in_dim", [0, 2])
@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_vmap_gated_packed(spec, params, in_dim, dim):
    ours, theirs = _gated_fns(spec, params, dim)
    x = randn((4, 6, 8), torch.float64)  # every dim of a sample, (6, 8) or (4, 6), is even
    with _NoFallback():
        got = torch.func.vmap(ours, in_dims=in_dim)(x)
    assert_close(got, torch.func.vmap(theirs, in_dims=in_dim)(x))


@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_vmap_gated_split_with_one_unbatched_half(spec, params):
    gate, up = randn((5, 3, 4), torch.float64), randn((3, 4), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(lambda g, u: spec.op.split(g, u, **params), in_dims=(0, None))(gate, up)
    expected = torch.func.vmap(lambda g, u: spec.reference(g, u, **params), in_dims=(0, None))(gate, up)
    assert_close(got, expected)


@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_vmap_backward_ops(spec, params):
    """X_backward under vmap, one argument batched (dim 1) and one not, vs one direct call."""
    g, x = randn((3, 7), torch.float64), randn((3,), torch.float64)
    saved = spec.op(x, **params) if spec.grad_from_output else x
    with _NoFallback():
        got = torch.func.vmap(lambda a, b: spec.backward_op(a, b, **params), in_dims=(1, None))(g, saved)
    expected = spec.backward_op(g.t(), saved.expand(7, 3), **params)
    assert_close(got, expected)


def _rowwise_fns(spec, params, dim):
    params = {k: v for k, v in params.items() if k != "dim"}
    return (lambda t: spec.op(t, dim, **params)), (lambda t: spec.reference(t, dim=dim, **params))


@pytest.mark.parametrize("dim", [0, 1, -1, -2])
@pytest.mark.parametrize("in_dim", [0, 2])
@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_vmap_rowwise(spec, params, in_dim, dim):
    ours, theirs = _rowwise_fns(spec, params, dim)
    x = randn((3, 4, 5), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(ours, in_dims=in_dim)(x)
    assert_close(got, torch.func.vmap(theirs, in_dims=in_dim)(x))


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_vmap_rowwise_of_scalars(spec, params, dim):
    """A batch of 0-dim samples: each a row of one element (dim 0 or -1)."""
    ours, theirs = _rowwise_fns(spec, params, dim)
    x = randn((5,), torch.float64)
    with _NoFallback():
        got = torch.func.vmap(ours)(x)
    assert_close(got, torch.func.vmap(theirs)(x))


@pytest.mark.parametrize("dim", [2, -3])
@pytest.mark.parametrize("spec", [pytest.param(s, id=s.name) for s in OPS if s.kind == "rowwise"])
def test_vmap_rowwise_dim_out_of_range_of_the_sample(spec, dim):
    """A dim out of the sample's range is an error naming the op and dim (shifted past the
    batch dim it could name a valid dim of the batch), as torch's softmax under vmap."""
    x = randn((4, 2, 3), torch.float64)
    with pytest.raises((IndexError, RuntimeError)) as ours:
        torch.func.vmap(lambda t: spec.op(t, dim))(x)
    with pytest.raises((IndexError, RuntimeError)):
        torch.func.vmap(lambda t: spec.reference(t, dim=dim))(x)
    assert f"fusedact::{spec.name}" in str(ours.value) and "dim" in str(ours.value), str(ours.value)


@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_vmap_rowwise_backward_ops(spec, params):
    """X_backward(grad_output, output, dim) under vmap: grad_output batched (dim 1), output
    not; and both batched with dim given by keyword."""
    dtype = params.get("dtype") or torch.float64
    x = randn((3, 4), dtype)
    y = spec.op(x, -1)
    g = randn((3, 7, 4), dtype)
    with _NoFallback():
        got = torch.func.vmap(lambda a, b: spec.backward_op(a, b, -1), in_dims=(1, None))(g, y)
    expected = spec.backward_op(g.transpose(0, 1).contiguous(), y.expand(7, 3, 4).contiguous(), -1)
    assert_close(got, expected)
    ys = spec.op(randn((5, 3, 4), dtype), -1)
    gs = randn((5, 3, 4), dtype)
    with _NoFallback():
        got = torch.func.vmap(lambda a, b: spec.backward_op(a, b, dim=0))(gs, ys)
    assert_close(got, torch.stack([spec.backward_op(a, b, 0) for a, b in zip(gs, ys)]))


@pytest.mark.parametrize("spec,params", ROWWISE_CASES)
def test_grad_and_jacrev_rowwise(spec, params):
    ours, theirs = _rowwise_fns(spec, params, params["dim"])
    x = randn((3, 4), torch.float64)
    w = randn((3, 4), torch.float64)
    grad = lambda fn: torch.func.grad(lambda t: (fn(t) * w).sum())(x)  # noqa: E731
    assert_close(grad(ours), grad(theirs))
    assert_close(torch.func.jacrev(ours)(x), torch.func.jacrev(theirs)(x))
    per_sample = lambda fn: torch.func.vmap(torch.func.grad(lambda t: (fn(t) * t).sum()))(x)  # noqa: E731
    assert_close(per_sample(ours), per_sample(theirs))
    hessian = lambda fn: torch.func.jacrev(torch.func.jacrev(lambda t: (fn(t) * w).sum()))(x)  # noqa: E731
    assert_close(hessian(ours), hessian(theirs))


@pytest.mark.parametrize("spec", WEIGHTED)
def test_vmap_weighted_uses_the_per_sample_fallback_correctly(spec):
    x = randn((5, 2, 3, 4), torch.float64)
    # Per-channel weight for prelu; learnable_swish's reference broadcasts a single beta.
    weight = randn((3,) if spec.name == "prelu" else (1,), torch.float64).abs()
    got = torch.func.vmap(lambda t: spec.op(t, weight))(x)
    expected = torch.func.vmap(lambda t: spec.reference(t, weight))(x)
    assert_close(got, expected)


@pytest.mark.parametrize("name", [s.name for s in OPS if s.inplace and s.kind == "unary"])
def test_vmap_inplace(name):
    spec = BY_NAME[name]
    x = randn((4, 6), torch.float64)
    y = x.t().clone().t()  # batch dim 1 is the contiguous one
    with _NoFallback():
        torch.func.vmap(lambda t: getattr(FA, name)(t, inplace=True, **spec.params), in_dims=1)(y)
    assert_close(y, spec.reference(x, **spec.params))


# ---- grad, jacrev and compositions ----

@pytest.mark.parametrize("spec,params", UNARY_CASES)
def test_grad_and_jacrev_unary(spec, params):
    ours, theirs = _unary_fns(spec, params)
    x, w = randn((6,), torch.float64), randn((6,), torch.float64)
    grad = lambda fn: torch.func.grad(lambda t: (fn(t) * w).sum())(x)  # noqa: E731
    assert_close(grad(ours), grad(theirs))
    assert_close(torch.func.jacrev(ours)(x), torch.func.jacrev(theirs)(x))


@pytest.mark.parametrize("spec,params", GATED_CASES)
def test_grad_and_jacrev_gated(spec, params):
    ours, theirs = _gated_fns(spec, params, -1)
    x = randn((3, 4), torch.float64)
    w = randn((3, 2), torch.float64)
    grad = lambda fn: torch.func.grad(lambda t: (fn(t) * w).sum())(x)  # noqa: E731
    assert_close(grad(ours), grad(theirs))
    assert_close(torch.func.jacrev(ours)(x), torch.func.jacrev(theirs)(x))


@pytest.mark.parametrize("spec", WEIGHTED)
def test_grad_weighted_wrt_input_and_weight(spec):
    x = randn((4, 3, 2), torch.float64)
    weight = randn((3,) if spec.name == "prelu" else (1,), torch.float64)
    grads = lambda fn: torch.func.grad(lambda t, w: fn(t, w).square().sum(), argnums=(0, 1))(x, weight)  # noqa: E731
    assert_close(grads(spec.op), grads(spec.reference))


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "elu", "softplus", "swiglu", "geglu"])
def test_vmap_of_grad_and_hessian(name):
    spec = BY_NAME[name]
    if spec.kind == "gated":
        ours, theirs = _gated_fns(spec, {}, -1)
    else:
        ours, theirs = _unary_fns(spec, {})
    x = randn((5, 4), torch.float64)
    per_sample = lambda fn: torch.func.vmap(torch.func.grad(lambda t: fn(t).square().sum()))(x)  # noqa: E731
    assert_close(per_sample(ours), per_sample(theirs))
    hessian = lambda fn: torch.func.jacrev(torch.func.jacrev(lambda t: fn(t).sum()))(x[0])  # noqa: E731
    assert_close(hessian(ours), hessian(theirs))


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "silu", "hardtanh"])
def test_grad_through_inplace(name):
    spec = BY_NAME[name]
    fn = getattr(FA, name)
    ref = getattr(F, name)
    x = randn((3, 5), torch.float64)
    grad = lambda f: torch.func.vmap(torch.func.grad(lambda t: f(t * 1.5, inplace=True).square().sum()))(x)  # noqa: E731
    assert_close(grad(fn), grad(ref))


# ---- double backward through a model: a Hessian-vector product ----

def test_hessian_vector_product_through_a_model():
    torch.manual_seed(0)

    def model(activations):
        gelu, swiglu, silu, elu = activations

        def f(w1, w2, w3, x):
            h = gelu(x @ w1)
            h = swiglu(h @ w2)
            return (elu(silu(h) @ w3)).square().mean()

        return f

    ours = model((FA.gelu, FA.swiglu, FA.silu, FA.elu))
    theirs = model((F.gelu, lambda t: F.silu(t.chunk(2, -1)[0]) * t.chunk(2, -1)[1], F.silu, F.elu))
    params = (randn((6, 8), torch.float64, scale=0.5), randn((8, 10), torch.float64, scale=0.5),
              randn((5, 3), torch.float64, scale=0.5))
    x = randn((7, 6), torch.float64)
    v = tuple(randn(p.shape, torch.float64) for p in params)

    def hvp(f):
        return torch.autograd.functional.hvp(lambda *p: f(*p, x), params, v)

    (value, got), (value_ref, expected) = hvp(ours), hvp(theirs)
    assert_close(value, value_ref)
    assert_close(got, expected)
