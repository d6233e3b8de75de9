"""Golden values: fusedact and torch's built-ins against an mpmath reference (50 digits,
formulas written without cancellation: sigmoid(-x) for 1 - sigmoid(x), sech^2 for 1 - tanh^2).

For each op below, about 60 points (tails included: +-1e-30 ... +-100), the value and the
first derivative are computed in mpmath at the point as rounded to the dtype, and the error
of fusedact and of torch is measured in units in the last place (ULP) of the dtype at the
exact value (the subnormal spacing below the smallest normal number). A point is used for a
quantity only where that exact value is 0 or a normal number of the dtype ("representable";
gelu(-30) = -1.5e-197 is not in float32, so float32 skips it).

fusedact is evaluated twice per point, so that both of its CPU paths are measured: as a
one-element tensor (its scalar path) and inside a long contiguous tensor holding every point
17 times at different offsets (its SIMD lanes); its error is the larger of the two. torch's
built-in is measured the same way: its scalar CPU path (one-element tensors) and its
vectorized path (the same long tensor), the larger of the two (a tensor a user passes runs
through both: the vectorized loop for the bulk, the scalar loop for the tail); the table
shows both. quick_gelu has no torch built-in: torch's value is the composition
x * sigmoid(1.702 * x), as in the registry.

The test requires fusedact's maximum ULP error <= torch's, per op, dtype and quantity, and
prints the table at the end of the module. The reference is computed at test time (about
two seconds); nothing here is taken from fusedact's output.
"""

import collections
import math

import mpmath
import pytest
import torch
import torch.nn.functional as F

import fusedact  # noqa: F401
from fusedact.registry import get

DPS = 50

SELU_SCALE = mpmath.mpf("1.0507009873554804934193349852946")
SELU_ALPHA = mpmath.mpf("1.6732632423543772848170429916717")
QUICK = mpmath.mpf("1.702")


def _sig(x):
    return 1 / (1 + mpmath.exp(-x))


def _gelu_tanh(x):
    # 1 + tanh(u) = 2 sigmoid(2u) and 1 - tanh(u)^2 = 4 sigmoid(2u) sigmoid(-2u): no cancellation
    # (1 + tanh(-79.6) = 2e-69 is 0 at 50 digits written the other way).
    k = mpmath.sqrt(2 / mpmath.pi)
    c = mpmath.mpf("0.044715")
    u = k * (x + c * x**3)
    s, s_neg = _sig(2 * u), _sig(-2 * u)
    return x * s, s + 2 * x * s * s_neg * k * (1 + 3 * c * x * x)


def _softplus(x, beta=1, threshold=20):
    # torch's definition: x itself once beta * x > threshold.
    if beta * x > threshold:
        return x, mpmath.mpf(1)
    return mpmath.log1p(mpmath.exp(beta * x)) / beta, _sig(beta * x)


def _mish(x):
    sp = mpmath.log1p(mpmath.exp(x))
    return x * mpmath.tanh(sp), mpmath.tanh(sp) + x * mpmath.sech(sp) ** 2 * _sig(x)


# name -> (fusedact op name, params, torch function, mp function returning (f(x), f'(x)))
OPS = {
    "gelu": ("gelu", {"approximate": "none"}, lambda t: F.gelu(t),
             lambda x: (x * mpmath.ncdf(x), mpmath.ncdf(x) + x * mpmath.npdf(x))),
    "gelu_tanh": ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh"), _gelu_tanh),
    "silu": ("silu", {}, F.silu, lambda x: (x * _sig(x), _sig(x) * (1 + x * _sig(-x)))),
    "mish": ("mish", {}, F.mish, _mish),
    "softplus": ("softplus", {"beta": 1.0, "threshold": 20.0}, F.softplus, _softplus),
    "elu": ("elu", {"alpha": 1.0}, F.elu,
            lambda x: (x, mpmath.mpf(1)) if x > 0 else (mpmath.expm1(x), mpmath.exp(x))),
    "selu": ("selu", {}, F.selu,
             lambda x: (SELU_SCALE * x, SELU_SCALE) if x > 0
             else (SELU_SCALE * SELU_ALPHA * mpmath.expm1(x), SELU_SCALE * SELU_ALPHA * mpmath.exp(x))),
    "celu": ("celu", {"alpha": 1.0}, F.celu,
             lambda x: (x, mpmath.mpf(1)) if x > 0 else (mpmath.expm1(x), mpmath.exp(x))),
    "sigmoid": ("sigmoid", {}, torch.sigmoid, lambda x: (_sig(x), _sig(x) * _sig(-x))),
    "logsigmoid": ("logsigmoid", {}, F.logsigmoid, lambda x: (-mpmath.log1p(mpmath.exp(-x)), _sig(-x))),
    "tanh": ("tanh", {}, torch.tanh, lambda x: (mpmath.tanh(x), mpmath.sech(x) ** 2)),
    "quick_gelu": ("quick_gelu", {}, lambda t: t * torch.sigmoid(1.702 * t),
                   lambda x: (x * _sig(QUICK * x), _sig(QUICK * x) * (1 + QUICK * x * _sig(-QUICK * x)))),
}

MAGNITUDES = [1e-30, 1e-8, 1e-3, 0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0,
              7.5, 10.0, 12.5, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0, 88.0, 100.0]
POINTS = sorted([-m for m in MAGNITUDES] + MAGNITUDES + [0.3, -0.3])  # 60 points

DTYPES = {"f32": torch.float32, "f64": torch.float64, "bf16": torch.bfloat16}
MANTISSA_BITS = {torch.float32: 23, torch.float64: 52, torch.bfloat16: 7}
COPIES = 17

TABLE = collections.OrderedDict()  # (op, dtype id, quantity) -> (n points, ours, torch scalar, torch vec)


def _ulp(exact, dtype):
    info = torch.finfo(dtype)
    p = MANTISSA_BITS[dtype]
    a = abs(exact)
    if a < info.tiny:
        return mpmath.ldexp(1, int(math.log2(info.tiny)) - p)
    e = int(mpmath.floor(mpmath.log(a, 2)))
    # log() rounding at exact powers of two: fix the exponent so that 2^e <= a < 2^(e+1).
    if mpmath.ldexp(1, e) > a:
        e -= 1
    elif mpmath.ldexp(1, e + 1) <= a:
        e += 1
    return mpmath.ldexp(1, e - p)


def _ulp_error(value, exact, dtype):
    if math.isnan(value) or math.isinf(value):
        return math.inf
    return float(abs(mpmath.mpf(value) - exact) / _ulp(exact, dtype))


def _representable(exact, dtype):
    info = torch.finfo(dtype)
    return exact == 0 or (torch.finfo(dtype).tiny <= abs(exact) <= info.max)


_EXACT_CACHE = {}


def _exact(name, dtype):
    """[(x as float, f(x), f'(x))] at the points rounded to dtype (mpmath, 50 digits)."""
    key = (name, dtype)
    if key not in _EXACT_CACHE:
        xs = torch.tensor(POINTS, dtype=torch.float64).to(dtype).double().tolist()
        fn = OPS[name][3]
        with mpmath.workdps(DPS):
            _EXACT_CACHE[key] = [(x, *fn(mpmath.mpf(x))) for x in xs]
    return _EXACT_CACHE[key]


def _value_and_derivative(fn, x):
    x = x.detach().requires_grad_()
    y = fn(x)
    (d,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), d


def _ours(name, dtype):
    """fusedact's (values, derivatives) per point: [[from each evaluation], ...]."""
    op_name, params = OPS[name][0], OPS[name][1]
    op = get(op_name).op
    fn = lambda t: op(t, **params)  # noqa: E731
    x = torch.tensor(POINTS, dtype=torch.float64).to(dtype)
    n = x.numel()
    values = [[] for _ in range(n)]
    derivs = [[] for _ in range(n)]
    for i in range(n):  # scalar path: one element
        y, d = _value_and_derivative(fn, x[i : i + 1].clone())
        values[i].append(y.item())
        derivs[i].append(d.item())
    # SIMD lanes: every point at COPIES different offsets of one long contiguous tensor.
    tiled = torch.cat([x.roll(k) for k in range(COPIES)])
    y, d = _value_and_derivative(fn, tiled)
    for k in range(COPIES):
        for i in range(n):
            values[i].append(y[k * n + (i + k) % n].item())
            derivs[i].append(d[k * n + (i + k) % n].item())
    return values, derivs


def _torch(name, dtype, vectorized):
    fn = OPS[name][2]
    x = torch.tensor(POINTS, dtype=torch.float64).to(dtype)
    if vectorized:
        y, d = _value_and_derivative(fn, torch.cat([x] * COPIES))
        return [[v] for v in y[: x.numel()].tolist()], [[v] for v in d[: x.numel()].tolist()]
    values, derivs = [], []
    for i in range(x.numel()):
        y, d = _value_and_derivative(fn, x[i : i + 1].clone())
        values.append([y.item()])
        derivs.append([d.item()])
    return values, derivs


def _point_errors(results, exact, dtype, quantity, which=slice(None)):
    """{x: ULP error} over the representable points; `which` selects evaluations (0: the
    one-element call, 1: the SIMD lanes)."""
    errors = {}
    for (x, f, df), got in zip(exact, results):
        e = f if quantity == "value" else df
        if _representable(e, dtype):
            errors[x] = max(_ulp_error(v, e, dtype) for v in got[which])
    return errors


def _max(errors):
    """(max ULP error, the point where it occurs, number of points)."""
    x = max(errors, key=lambda k: errors[k])
    return errors[x], x, len(errors)


CASES = [pytest.param(name, dt, q, id=f"{name}-{dt}-{q}")
         for name in OPS for dt in DTYPES for q in ("value", "derivative")]
_COMPUTED = {}


def _errors(name, dt):
    key = (name, dt)
    if key not in _COMPUTED:
        dtype = DTYPES[dt]
        exact = _exact(name, dtype)
        ours = _ours(name, dtype)
        theirs = _torch(name, dtype, vectorized=False)
        theirs_vec = _torch(name, dtype, vectorized=True)
        _COMPUTED[key] = {
            q: tuple(_point_errors(r[k], exact, dtype, q, which)
                     for r, which in ((ours, slice(None)), (ours, slice(0, 1)), (ours, slice(1, None)),
                                      (theirs, slice(None)), (theirs_vec, slice(None))))
            for k, q in enumerate(("value", "derivative"))
        }
    return _COMPUTED[key]


@pytest.fixture(scope="module", autouse=True)
def _print_table(request):
    yield
    lines = [
        "",
        "max ULP error vs mpmath. fusedact = max of its scalar path (scal) and SIMD lanes (simd); at = where;",
        "torch = its scalar CPU path (the requirement: fusedact <= torch), torch vec = its vectorized CPU path;",
        "worse>1 = points where fusedact's error exceeds torch's by more than 1 ULP (information), at the",
        "point of the largest excess.",
        f"{'op':<11}{'dtype':<5}{'quantity':<11}{'pts':>4}{'fusedact':>10}{'at':>8}{'scal':>9}{'simd':>9}"
        f"{'torch':>10}{'torch vec':>10}{'worse>1':>8}  {'largest excess':<28}verdict",
    ]
    for (name, dt, q), row in TABLE.items():
        n, ours, at, scal, simd, theirs, theirs_vec, worse, excess = row
        verdict = "ok" if ours <= theirs else "WORSE"
        lines.append(f"{name:<11}{dt:<5}{q:<11}{n:>4}{ours:>10.3g}{_fmt(at):>8}{scal:>9.3g}{simd:>9.3g}"
                     f"{theirs:>10.3g}{theirs_vec:>10.3g}{worse:>8}  {excess:<28}{verdict}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for line in lines:
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line)


def _fmt(x):
    return f"{x:.3g}"


@pytest.mark.parametrize("name,dt,quantity", CASES)
def test_no_less_accurate_than_torch(name, dt, quantity):
    ours_e, scal_e, simd_e, theirs_e, vec_e = _errors(name, dt)[quantity]
    (ours, at, n), (theirs, _, _), (theirs_vec, _, _) = _max(ours_e), _max(theirs_e), _max(vec_e)
    excess = {x: ours_e[x] - theirs_e[x] for x in ours_e if ours_e[x] > theirs_e[x] + 1}
    largest = max(excess, key=lambda k: excess[k]) if excess else None
    excess_text = "" if largest is None else \
        f"x={_fmt(largest)}: {ours_e[largest]:.3g} vs {theirs_e[largest]:.3g}"
    TABLE[(name, dt, quantity)] = (n, ours, at, _max(scal_e)[0], _max(simd_e)[0], theirs, theirs_vec,
                                   len(excess), excess_text)
    assert n >= 40, f"only {n} representable points"
    assert ours <= max(theirs, theirs_vec), (
        f"{name} {dt} {quantity}: fusedact's max error {ours:.3g} ULP (at x = {at}) > torch's: "
        f"{theirs:.3g} ULP (scalar path), {theirs_vec:.3g} ULP (vectorized path)"
    )


def test_reference_matches_torch_float64_where_both_are_accurate():
    """Sanity check of the mpmath formulas themselves: torch's float64 values agree with them
    to 1e-12 relative at moderate points (catches a wrong formula or constant here)."""
    for name in OPS:
        exact = _exact(name, torch.float64)
        fn = OPS[name][2]
        for x, f, df in exact:
            if abs(x) > 10 or abs(x) < 1e-3:
                continue
            y, d = _value_and_derivative(fn, torch.tensor([x], dtype=torch.float64))
            assert abs(y.item() - float(f)) <= 1e-12 * max(1.0, abs(float(f))), (name, x, y.item(), float(f))
            assert abs(d.item() - float(df)) <= 1e-12 * max(1.0, abs(float(df))), (name, x, d.item(), float(df))
