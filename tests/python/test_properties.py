"""Property tests (hypothesis): fusedact vs torch's reference on random shapes, layouts,
values and parameters, forward and backward, for the unary, gated, weighted and row-wise ops
(the row-wise ones over a random dim, against torch's built-in).

- Shapes: 0 to 4 dims, each 0 to 65 long (at most MAX_NUMEL elements in all).
- Layouts: contiguous, permuted (transposed) views, slices with steps and offsets, expanded
  size-1 dims, and a permuted slice; grad_output gets its own random layout.
- Values: float32 and float64, hypothesis floats of the dtype's width with subnormals, +-0,
  +-inf, NaN, the largest finite values, mixed with a bulk of normal values of a random
  scale (1e-3 .. 1e3) so that every branch of the activations is visited.
- Parameters: drawn from each op's valid range (the registry's param_sets are examples).
- grad_output: unit scale (standard normal), as assert_close's absolute tolerance presumes
  (test_forward_backward.py explains why: torch's own float32 tanh-GELU derivative carries
  an absolute error of ~1e-6, which a large grad_output would lift past atol).

Reference: torch's built-in (assert_close, its default tolerances, equal_nan=True: DESIGN.md
section 5, as test_forward_backward.py), computed on conftest.scalar_path (torch's CPU
scalar loop, whose formulas its CUDA kernel shares: DESIGN.md makes the CUDA kernel the
reference). Where torch has no built-in (the registry's `composite` rows, learnable_swish)
the reference is the composition, judged elementwise by _check_composite: close to the exact
value (float64 / mpmath) or to torch's composition, or no further from the exact value than
torch's composition, with nan of the composition's own g-products not counted as a value
to match (see _check_composite). The backward ops called directly must give the autograd
result bit for bit.

Deterministic: derandomize=True, database=None, no shrinking. EXAMPLES_PER_TEST (150)
examples per test, 76 tests (38 op/test combinations x float32, float64): at most 11,400
examples; a test stops at its first failing example. The number actually run is printed at
the end of the module (EXAMPLE_COUNT); with the failures of this build: 11,242.
Note: derandomize seeds from the test function's source, so editing a test body changes
the examples drawn.
"""

import collections
import math

import mpmath
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from conftest import exact_reference, scalar_path
from fusedact.registry import OPS

EXAMPLES_PER_TEST = 150
MAX_NUMEL = 2048
EXAMPLE_COUNT = collections.Counter()

SETTINGS = settings(
    max_examples=EXAMPLES_PER_TEST,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    # No shrinking: it costs more time than the whole run; the failure messages name the
    # elements and their inputs instead.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

DTYPES = {"f32": torch.float32, "f64": torch.float64}


@pytest.fixture(scope="module", autouse=True)
def _report_count(request):
    yield
    total = sum(EXAMPLE_COUNT.values())
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    line = f"test_properties: {total} hypothesis examples run ({dict(EXAMPLE_COUNT)})"
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(line)
    else:
        print(line)


# --------------------------------------------------------------------------------------
# Strategies


def _specials(dtype):
    info = torch.finfo(dtype)
    # Where x * c, x**2 and x**3 overflow (c up to 2: scaled sigmoid arguments).
    overflow = [info.max / 1.5, math.sqrt(info.max) * 1.5, math.sqrt(info.max) / 1.5,
                info.max ** (1 / 3) * 1.5, info.max ** (1 / 3) * 4]
    return [0.0, -0.0, info.tiny, -info.tiny, info.tiny * info.eps, -info.tiny * info.eps, info.max, -info.max,
            info.eps, 1e-30, -1e-30, 1e-8, -1e-8, 88.7, -88.7, 20.0, -20.0, 710.0, -710.0, math.inf, -math.inf,
            math.nan, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 6.0, 0.5, -0.5] + overflow + [-v for v in overflow]


def _elements(dtype):
    width = 32 if dtype == torch.float32 else 64
    return st.one_of(
        st.floats(width=width, allow_subnormal=True),  # anything, nan and +-inf included
        st.floats(-30, 30, width=width, allow_subnormal=True),
        st.sampled_from(_specials(dtype)),
    )


@st.composite
def shapes(draw, min_dims=0, max_dims=4):
    ndim = draw(st.integers(min_dims, max_dims))
    shape, numel = [], 1
    for _ in range(ndim):
        size = draw(st.integers(0, min(65, max(1, MAX_NUMEL // max(numel, 1)))))
        shape.append(size)
        numel *= max(size, 1)
    return tuple(shape)


@st.composite
def values(draw, numel, dtype):
    """A float64 tensor of `numel` values of the dtype's range: all drawn by hypothesis for
    small tensors; for larger ones a seeded bulk of a random scale with drawn values at
    random positions."""
    if numel <= 48:
        vals = draw(st.lists(_elements(dtype), min_size=numel, max_size=numel))
        return torch.tensor(vals, dtype=torch.float64).reshape(numel)
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-3, 0.3, 3.0, 30.0, 1e3]))
    picks = draw(st.lists(_elements(dtype), min_size=1, max_size=32))
    gen = torch.Generator().manual_seed(seed)
    bulk = torch.randn(numel, generator=gen, dtype=torch.float64) * scale
    where = torch.randint(0, numel, (len(picks),), generator=gen)
    bulk[where] = torch.tensor(picks, dtype=torch.float64)
    return bulk


@st.composite
def layouts(draw, shape, dtype, make_values=True):
    """A tensor of `shape` in a random layout, with values from `values` (or standard
    normal grad_output values with make_values=False)."""
    ndim = len(shape)
    kind = draw(st.sampled_from(["contiguous", "permute", "step", "expand", "permute_step"]))
    if kind == "expand" and not any(s != 1 for s in shape):
        kind = "contiguous"
    # Steps and offsets per dim for slicing.
    steps = [draw(st.integers(1, 3)) if "step" in kind else 1 for _ in range(ndim)]
    offsets = [draw(st.integers(0, 2)) if "step" in kind else 0 for _ in range(ndim)]
    perm = list(range(ndim))
    if "permute" in kind and ndim > 1:
        perm = draw(st.permutations(list(range(ndim))))
    # Expanded dims: stored as size 1, broadcast to the target size.
    expanded = [draw(st.booleans()) if kind == "expand" else False for _ in range(ndim)]

    stored = [1 if e else s for s, e in zip(shape, expanded)]
    base_shape = [off + max(s - 1, 0) * st_ + 1 if s > 0 else off for s, st_, off in zip(stored, steps, offsets)]
    numel = math.prod(base_shape)
    if make_values:
        flat = draw(values(numel, dtype))
    else:
        seed = draw(st.integers(0, 2**31 - 1))
        flat = torch.randn(numel, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    # Store the base permuted, then permute back: the view has shape base_shape, permuted strides.
    permuted = flat.to(dtype).reshape([base_shape[p] for p in perm])
    inverse = [perm.index(i) for i in range(ndim)]
    base = permuted.permute(inverse) if ndim else permuted.reshape(())
    index = tuple(slice(off, off + (s - 1) * st_ + 1 if s > 0 else off, st_)
                  for s, st_, off in zip(stored, steps, offsets))
    t = base[index] if ndim else base
    if any(expanded):
        t = t.expand(shape)
    assert tuple(t.shape) == tuple(shape), (t.shape, shape, kind)
    return t


def _f(lo, hi, width=64):
    return st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)


@st.composite
def params_for(draw, spec):
    """Keyword parameters from the op's valid range."""
    n = spec.name
    if n in ("gelu", "geglu"):
        return {"approximate": draw(st.sampled_from(["none", "tanh"]))}
    if n == "leaky_relu":
        return {"negative_slope": draw(st.one_of(_f(-2, 2), st.sampled_from([0.0, 0.01, -0.5])))}
    if n == "elu":
        return {"alpha": draw(st.one_of(_f(0.0, 3.0), st.sampled_from([1.0, 0.8, 2.5])))}
    if n == "celu":
        # float32-representable alpha: torch's celu backward rounds 1/alpha to float32 even
        # in float64 (see test_kinks.py), a known torch error not tested here.
        return {"alpha": draw(st.one_of(_f(0.0625, 3.0, width=32), _f(-3.0, -0.0625, width=32)))}
    if n == "softplus":
        return {"beta": draw(st.one_of(_f(0.1, 5.0), st.sampled_from([1.0, 2.0, 0.5]))),
                "threshold": draw(st.one_of(_f(0.5, 40.0), st.sampled_from([20.0, 5.0])))}
    if n == "hardtanh":
        a, b = sorted([draw(_f(-10, 10)), draw(_f(-10, 10))])
        return {"min_val": a, "max_val": b}
    if n in ("hardshrink", "softshrink"):
        return {"lambd": draw(st.one_of(_f(0.0, 5.0), st.sampled_from([0.5, 1.5, 0.0])))}
    if n == "threshold":
        return {"threshold": draw(_f(-10, 10)), "value": draw(_f(-10, 10))}
    if n == "swish":
        return {"beta": draw(st.one_of(_f(-3.0, 3.0), st.sampled_from([1.0, 0.5, 2.0])))}
    if n == "rrelu":
        a, b = sorted([draw(_f(0.0, 1.0)), draw(_f(0.0, 1.0))])
        return {"lower": a, "upper": b}
    assert not spec.params, f"no parameter strategy for {n}: {spec.params}"
    return {}


# --------------------------------------------------------------------------------------
# Helpers


def _grads(fn, inputs, g):
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = fn(*leaves)
    grads = torch.autograd.grad(y, leaves, g)
    return (y.detach(),) + tuple(grads)


def _partials_times_g(fn, inputs, g):
    """Value and gradients of an elementwise composition (all inputs and g shaped like the
    output) as grad_output times the partial derivatives: autograd of the composition with a
    grad_output of ones, g applied last. The same mathematics as autograd with grad_output g,
    without its intermediate products with g."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = fn(*leaves)
    partials = torch.autograd.grad(y, leaves, torch.ones_like(y))
    return (y.detach(),) + tuple(g * p for p in partials)


# --------------------------------------------------------------------------------------
# High-precision values of the compositions (mpmath), for the few elements where the float64
# evaluation cannot serve as the exact value: its own intermediates overflow (relu_squared'
# at x = 8.99e307 is 2x = inf in float64; times g = -0.29 the exact gradient is finite).

def _mp_sigmoid(t):
    return 1 / (1 + mpmath.exp(-t))


def _mp_gelu(t, approximate):
    if approximate == "tanh":
        return t / 2 * (1 + mpmath.tanh(mpmath.sqrt(2 / mpmath.pi) * (t + mpmath.mpf(0.044715) * t**3)))
    return t * mpmath.ncdf(t)


MP_FUNCTIONS = {
    "swish": lambda p: lambda x: x * _mp_sigmoid(mpmath.mpf(p["beta"]) * x),
    "quick_gelu": lambda p: lambda x: x * _mp_sigmoid(mpmath.mpf(1.702) * x),
    "relu_squared": lambda p: lambda x: max(x, 0) ** 2,
    "softsign": lambda p: lambda x: x / (1 + abs(x)),
    "tanhshrink": lambda p: lambda x: x - mpmath.tanh(x),
    "glu": lambda p: lambda gate, up: up * _mp_sigmoid(gate),
    "swiglu": lambda p: lambda gate, up: gate * _mp_sigmoid(gate) * up,
    "geglu": lambda p: lambda gate, up: _mp_gelu(gate, p.get("approximate", "none")) * up,
    "reglu": lambda p: lambda gate, up: max(gate, 0) * up,
    "learnable_swish": lambda p: lambda x, w: x * _mp_sigmoid(w * x),
    "gelu": lambda p: lambda x: _mp_gelu(x, p.get("approximate", "none")),
}


def _mp_exact(fn, args, wrt, g):
    """fn(*args) (wrt None) or g * d fn / d args[wrt], at 50 digits, as a Python float."""
    with mpmath.workdps(50):
        xs = [mpmath.mpf(a) for a in args]
        if wrt is None:
            value = fn(*xs)
        else:
            def along(t):
                return fn(*(t if i == wrt else a for i, a in enumerate(xs)))
            # A step relative to the argument: mpmath's default step is absolute.
            step = abs(xs[wrt]) * mpmath.mpf(10) ** -20 if xs[wrt] != 0 else mpmath.mpf(10) ** -20
            value = mpmath.mpf(g) * mpmath.diff(along, xs[wrt], h=step)
        return float(value)


# torch.testing.assert_close's default (rtol, atol) per dtype.
DEFAULT_TOL = {torch.float32: (1.3e-6, 1e-5), torch.float64: (1e-7, 1e-7)}
MP_FALLBACK_MAX = 64  # elements per output re-evaluated with mpmath


def _errors(value, exact):
    """|value - exact| elementwise in float64; 0 where both are the same inf or both nan,
    inf where only one is nan."""
    value, exact = value.double(), exact.double()
    same = (value == exact) | (value.isnan() & exact.isnan())
    err = (value - exact).abs()
    return torch.where(same, torch.zeros_like(err), torch.nan_to_num(err, nan=math.inf, posinf=math.inf))


def _check_composite(ours, ours_ones, theirs, theirs_ones, exact, what, mp_at=None, show=None):
    """For ops whose torch reference is a composition of several torch ops (DESIGN.md
    section 5: the same composition; registry `composite`), and for sums over many elements.

    Elementwise, fusedact's value must be
    - close to the exact value (the composition in float64 with grad_output applied last,
      _partials_times_g; float32 inputs are exact in float64; where that fails in float64,
      mp_at(index) gives the value at 50 digits), or
    - close to torch's composition in the same dtype, or at least as close to the exact value
      as torch's (test_forward_backward.test_gated_half_no_worse_than_torch's criterion:
      for sums with cancellation two float32 summation orders differ by far more than the
      default tolerance),
    except where torch's composition gives nan only because of its products with g (with a
    grad_output of ones, `theirs_ones`, the same composition in the same dtype is not nan)
    and the exact value is not nan: autograd of x * sigmoid(b * x) forms g * x, which
    overflows for |x| near the dtype's maximum, and inf * 0 = nan, although the derivative is
    finite (torch's fused built-ins such as silu_backward give it). There fusedact must be
    close to the exact value, unless its own nan comes from the same product with g
    (`ours_ones`, fusedact with a grad_output of ones, is not nan there: swiglu's
    g * up * silu'(gate) with g * up = -inf and silu'(gate) = 0, as torch's composition).
    A nan of a torch built-in inside the composition (F.gelu's tanh derivative at
    |x| > 1.8e19 in float32) is torch's value and is matched as such.
    Closeness: torch.isclose with assert_close's default tolerances for the dtype."""
    rtol, atol = DEFAULT_TOL[ours.dtype]
    o, t, e = ours.double(), theirs.double(), exact.double().clone()

    def judge():
        close_exact = torch.isclose(o, e, rtol=rtol, atol=atol, equal_nan=True)
        close_torch = torch.isclose(o, t, rtol=rtol, atol=atol, equal_nan=True)
        artifact = t.isnan() & ~theirs_ones.isnan() & ~e.isnan()
        shared = o.isnan() & ~ours_ones.isnan()
        no_worse = _errors(o, e) <= _errors(t, e)
        return ~(close_exact | ((~artifact | shared) & (close_torch | no_worse)))

    bad = judge()
    if bad.any() and mp_at is not None and ours.dtype == torch.float64:
        for i in bad.nonzero()[:MP_FALLBACK_MAX]:
            value = mp_at(tuple(i.tolist()))
            if value is not None:
                e[tuple(i.tolist())] = value
        bad = judge()
    if bad.any():
        idx = bad.nonzero()[:8]
        shown = "; ".join(
            f"at {tuple(i.tolist())}: fusedact {o[tuple(i)].item()!r} torch {t[tuple(i)].item()!r} "
            f"exact {e[tuple(i)].item()!r}" + (f" ({show(tuple(i.tolist()))})" if show else "") for i in idx
        )
        raise AssertionError(f"{what}: {int(bad.sum())} of {bad.numel()} elements wrong: {shown}")


def _ref_inputs(tensors):
    return [scalar_path(t.detach()) for t in tensors]


def _compare(ours, ref, names, info, inputs=()):
    """assert_close; a mismatch names the first elements and their inputs (and grad_output)."""
    for name, o, r in zip(names, ours, ref):
        def message(m, name=name, o=o, r=r):
            rtol, atol = DEFAULT_TOL[o.dtype]
            bad = ~torch.isclose(o.double(), r.double(), rtol=rtol, atol=atol, equal_nan=True) \
                if o.shape == r.shape else torch.zeros((), dtype=torch.bool)
            shown = "; ".join(
                f"at {tuple(i.tolist())}: fusedact {o[tuple(i)].item()!r} torch {r[tuple(i)].item()!r} inputs "
                + ", ".join(repr(float(a[tuple(i)])) for a in inputs) for i in bad.nonzero()[:8]
            )
            return f"{name} ({info}): {m}\n{shown}"

        assert_close(o, r, equal_nan=True, msg=message)


def _verify(spec, params, ours, ours_ones, ref_fn, inputs, g, names, info, constants=()):
    """ours = (value, gradient w.r.t. each input) vs torch's reference ref_fn(*inputs,
    *constants) (elementwise, all shaped like the output) with grad_output g: assert_close
    against a torch built-in, _check_composite against a composition. ours_ones: fusedact's
    results with a grad_output of ones."""
    ref_inputs = _ref_inputs(inputs)

    def fn(*t):
        return ref_fn(*t, *[c.to(t[0].dtype) for c in constants])

    theirs = _grads(fn, ref_inputs, g)
    # learnable_swish's reference is the composition x * sigmoid(w * x) (no torch built-in).
    # gelu and geglu: fusedact evaluates cancellation-free forms where torch's cancel in the
    # left tail (conftest.reference_input), so they are held to "no worse than torch" too.
    if not (spec.composite or spec.name in ("learnable_swish", "gelu", "geglu")):
        _compare(ours, theirs, names, info, list(inputs) + [g])
        return
    theirs_ones = _partials_times_g(fn, ref_inputs, torch.ones_like(g))
    exact_fn = exact_reference(spec, params)

    def exact_with_constants(*t):
        return exact_fn(*t, *[c.to(t[0].dtype) for c in constants])

    exact = _partials_times_g(exact_with_constants, [t.double() for t in ref_inputs], g.double())
    mp_fn = MP_FUNCTIONS[spec.name](params)

    def show(index):
        return "inputs " + ", ".join(repr(float(a[index])) for a in list(inputs) + list(constants)) + \
            f", grad_output {float(g[index])!r}"

    for k, (name, o, o1, t, t1, e) in enumerate(zip(names, ours, ours_ones, theirs, theirs_ones, exact)):
        def mp_at(index, k=k):
            args = [float(a[index]) for a in list(inputs) + list(constants)]
            if not all(math.isfinite(a) for a in args):
                return None
            return _mp_exact(mp_fn, args, None if k == 0 else k - 1, float(g[index]))

        _check_composite(o, o1, t, t1, e, f"{name} ({info})", mp_at, show)


UNARY = [pytest.param(s, id=s.name) for s in OPS if s.kind in ("unary", "random")]
GATED = [pytest.param(s, id=s.name) for s in OPS if s.kind == "gated"]
WEIGHTED = [pytest.param(s, id=s.name) for s in OPS if s.kind == "weighted"]
ROWWISE = [pytest.param(s, id=s.name) for s in OPS if s.kind == "rowwise"]
dtype_param = pytest.mark.parametrize("dtype", list(DTYPES.values()), ids=list(DTYPES))


def _unary_ours(spec, params):
    if spec.kind == "random":  # rrelu in evaluation mode
        return lambda t: spec.op(t, params["lower"], params["upper"], False)
    return lambda t: spec.op(t, **params)


# --------------------------------------------------------------------------------------
# Tests


@dtype_param
@pytest.mark.parametrize("spec", UNARY)
@SETTINGS
@given(data=st.data())
def test_unary_matches_torch(spec, dtype, data):
    shape = data.draw(shapes(), label="shape")
    x = data.draw(layouts(shape, dtype), label="x")
    g = data.draw(layouts(shape, dtype, make_values=False), label="grad_output")
    params = data.draw(params_for(spec), label="params")
    EXAMPLE_COUNT[f"unary-{spec.name}"] += 1
    info = f"{spec.name} {params} {dtype} shape {shape} strides {x.stride()}"

    ours = _grads(_unary_ours(spec, params), [x], g)
    ours_ones = _grads(_unary_ours(spec, params), [x], torch.ones_like(g))
    _verify(spec, params, ours, ours_ones, lambda t: spec.reference(t, **params), [x], g,
            ["forward", "grad input"], info)
    if spec.kind == "unary":  # the backward op called directly gives the autograd result
        saved = ours[0] if spec.grad_from_output else x
        assert_close(spec.backward_op(g, saved, **params), ours[1], equal_nan=True, rtol=0, atol=0)


@dtype_param
@pytest.mark.parametrize("spec", GATED)
@SETTINGS
@given(data=st.data())
def test_gated_packed_matches_torch(spec, dtype, data):
    half_shape = list(data.draw(shapes(min_dims=1), label="half shape"))
    dim = data.draw(st.integers(-len(half_shape), len(half_shape) - 1), label="dim")
    shape = list(half_shape)
    shape[dim] *= 2
    x = data.draw(layouts(tuple(shape), dtype), label="x")
    g = data.draw(layouts(tuple(half_shape), dtype, make_values=False), label="grad_output")
    params = data.draw(params_for(spec), label="params")
    EXAMPLE_COUNT[f"gated-packed-{spec.name}"] += 1
    info = f"{spec.name} {params} {dtype} shape {shape} dim {dim} strides {x.stride()}"

    def halves(t):
        n = t.size(dim) // 2
        first, second = t.narrow(dim, 0, n), t.narrow(dim, n, n)
        return (first, second) if spec.gated_half == "first" else (second, first)

    y, gx = _grads(lambda t: spec.op(t, **params, dim=dim), [x], g)
    y1, gx1 = _grads(lambda t: spec.op(t, **params, dim=dim), [x], torch.ones_like(g))
    # The packed gradient's two halves are the gradients w.r.t. gate and up.
    _verify(spec, params, (y, *halves(gx)), (y1, *halves(gx1)), lambda a, b: spec.reference(a, b, **params),
            list(halves(x)), g, ["forward", "grad gate half", "grad up half"], info)
    assert_close(spec.backward_op(g, x, **params, dim=dim), gx, equal_nan=True, rtol=0, atol=0)


@dtype_param
@pytest.mark.parametrize("spec", GATED)
@SETTINGS
@given(data=st.data())
def test_gated_split_matches_torch(spec, dtype, data):
    shape = data.draw(shapes(), label="shape")
    gate = data.draw(layouts(shape, dtype), label="gate")
    up = data.draw(layouts(shape, dtype), label="up")
    g = data.draw(layouts(shape, dtype, make_values=False), label="grad_output")
    params = data.draw(params_for(spec), label="params")
    EXAMPLE_COUNT[f"gated-split-{spec.name}"] += 1
    info = f"{spec.name} {params} {dtype} shape {shape} strides {gate.stride()} {up.stride()}"

    ours = _grads(lambda a, b: spec.op.split(a, b, **params), [gate, up], g)
    ours_ones = _grads(lambda a, b: spec.op.split(a, b, **params), [gate, up], torch.ones_like(g))
    _verify(spec, params, ours, ours_ones, lambda a, b: spec.reference(a, b, **params), [gate, up], g,
            ["forward", "grad gate", "grad up"], info)
    direct = spec.backward_op.split(g, gate, up, **params)
    assert_close(tuple(direct), ours[1:], equal_nan=True, rtol=0, atol=0)


# The weighted ops with the weight given per element.
ELEMENTWISE = {
    "prelu": lambda x, w: torch.where(x > 0, x, w * x),
    "learnable_swish": lambda x, w: x * torch.sigmoid(w * x),
}


def _weight_like(w, x):
    """The weight broadcast against x: per channel (dim 1) or one for all."""
    if w.numel() == 1:
        return w.reshape([])
    shape = [1] * x.dim()
    shape[1] = w.numel()
    return w.reshape(shape)


def _weighted_reference(spec, x, w):
    if spec.name == "prelu":
        return torch.nn.functional.prelu(x, w)
    return x * torch.sigmoid(_weight_like(w, x) * x)


def _sum_to_weight(t, w):
    """A tensor shaped like the input summed to the weight's shape (per channel or all)."""
    if w.numel() == 1:
        return t.sum().reshape(w.shape)
    return t.transpose(0, 1).reshape(w.numel(), -1).sum(1).reshape(w.shape)


@dtype_param
@pytest.mark.parametrize("spec", WEIGHTED)
@SETTINGS
@given(data=st.data())
def test_weighted_matches_torch(spec, dtype, data):
    shape = data.draw(shapes(min_dims=1), label="shape")
    x = data.draw(layouts(shape, dtype), label="x")
    channels = shape[1] if len(shape) >= 2 else 1
    per_channel = channels > 1 and data.draw(st.booleans(), label="per channel")
    w_vals = data.draw(st.lists(_f(-2.0, 2.0), min_size=channels if per_channel else 1,
                                max_size=channels if per_channel else 1), label="weight")
    w = torch.tensor(w_vals, dtype=dtype)
    g = data.draw(layouts(shape, dtype, make_values=False), label="grad_output")
    EXAMPLE_COUNT[f"weighted-{spec.name}"] += 1
    info = f"{spec.name} {dtype} shape {shape} weight {tuple(w.shape)}"

    y, gx, gw = _grads(lambda a, b: spec.op(a, b), [x, w], g)
    y1, gx1, _ = _grads(lambda a, b: spec.op(a, b), [x, w], torch.ones_like(g))
    # Value and input gradient: elementwise, the weight materialized per element.
    w_full = _weight_like(w, x).expand(x.shape).contiguous()
    if spec.name == "prelu":  # torch's built-in kernel
        (xr,) = _ref_inputs([x])
        _compare((y, gx), _grads(lambda a: torch.nn.functional.prelu(a, w), [xr], g)[:2],
                 ["forward", "grad input"], info)
    else:
        _verify(spec, {}, (y, gx), (y1, gx1), ELEMENTWISE[spec.name], [x], g, ["forward", "grad input"], info,
                constants=[w_full])
    # The weight gradient: a sum over many elements, in another order than torch's; exact:
    # the per-element partials times g in float64, summed in float64.
    (xr,) = _ref_inputs([x])
    theirs = _grads(lambda a, b: _weighted_reference(spec, a, b), [xr, w], g)[2]
    theirs_ones = theirs  # a sum has no product with g to single out
    _, _, dw = _partials_times_g(ELEMENTWISE[spec.name], [xr.double(), w_full.double()], g.double())
    _check_composite(gw, gw, theirs, theirs_ones, _sum_to_weight(dw, w), f"grad weight ({info})")


@dtype_param
@pytest.mark.parametrize("spec", ROWWISE)
@SETTINGS
@given(data=st.data())
def test_rowwise_matches_torch(spec, dtype, data):
    """softmax / log_softmax / softmin over a random dim of a random shape and layout
    (0-dim included: a row of one element) vs torch's built-in on the same values, forward
    and backward; the backward op called directly gives the autograd result bit for bit."""
    shape = data.draw(shapes(), label="shape")
    rank = max(len(shape), 1)
    dim = data.draw(st.integers(-rank, rank - 1), label="dim")
    x = data.draw(layouts(shape, dtype), label="x")
    g = data.draw(layouts(shape, dtype, make_values=False), label="grad_output")
    EXAMPLE_COUNT[f"rowwise-{spec.name}"] += 1
    info = f"{spec.name} dim {dim} {dtype} shape {shape} strides {x.stride()}"

    y, gx = _grads(lambda t: spec.op(t, dim), [x], g)
    assert y.is_contiguous(), info
    theirs = _grads(lambda t: spec.reference(t, dim=dim), [x.detach()], g)
    _compare((y, gx), theirs, ["forward", "grad input"], info, inputs=[x])
    assert_close(spec.backward_op(g, y, dim), gx, equal_nan=True, rtol=0, atol=0)
