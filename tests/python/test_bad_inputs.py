"""Every bad input a user can produce, run in ONE child process so that a crash (segfault,
abort, hang) fails the affected case instead of killing the pytest run.

The cases (CASES below) are executed by this same file run as a script
(`python test_bad_inputs.py --child`), which reads the case ids on stdin and writes one JSON
line per case: whether fusedact raised (exception type and message) or returned, the same for
the torch counterpart where there is one, and the comparison of the two results. The parent
(the pytest tests at the bottom) starts the child once, asserts per case, and if the child
dies during a case, records the signal for that case and starts a new child for the rest.

What each case expects (`expect`):
- "raise": fusedact raises RuntimeError / ValueError / TypeError (or a subclass) whose text
  names `fusedact::<op>` and the argument, and leaves its input tensors unchanged.
- "like_torch": torch's counterpart decides. Where torch raises, fusedact must raise as in
  "raise"; where torch returns, fusedact must return the same dtype and values
  (torch.testing.assert_close defaults, equal_nan=True). The counterpart is the torch.nn
  built-in of the same name (torch.nn.functional.X, torch.sigmoid, torch.tanh); ops without
  one (swish, quick_gelu, relu_squared, the gated ops but glu) take the four floating dtypes
  only (DESIGN.md section 2), so they use "raise".
- "core": errors raised by torch's own autograd / dispatcher machinery, which no operator
  controls (a leaf requiring grad used in place, a view created in no_grad mode, internal
  overlap, a saved tensor modified in place): fusedact raises the same exception class as
  torch's counterpart does in the same situation, and both messages contain the fragment
  given (taken from torch's wording, checked against torch's message in the same run).
  Torch's own messages for these do not name an op, so that is not required here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
from typing import Any, Callable, Optional, Tuple

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ACCEPTED = (RuntimeError, ValueError, TypeError)


@dataclasses.dataclass
class Case:
    id: str
    make: Callable[[], Tuple[Any, ...]]  # fresh arguments for each call
    ours: Callable[..., Any]
    expect: str  # "raise" | "like_torch" | "core"
    ops: Tuple[str, ...]  # fusedact op names one of which the message must name
    args: Tuple[str, ...]  # argument names one of which the message must name
    torch_fn: Optional[Callable[..., Any]] = None
    fragment: Optional[str] = None  # "core": the text both messages contain


CASES = []


def case(id, make, ours, expect="raise", ops=(), args=(), torch_fn=None, fragment=None):
    assert all(c.id != id for c in CASES), id
    if isinstance(ops, str):
        ops = (ops,)
    if isinstance(args, str):
        args = (args,)
    CASES.append(Case(id, make, ours, expect, tuple(ops), tuple(args), torch_fn, fragment))


def _ops():
    return torch.ops.fusedact


def _t(values, dtype=torch.float32, device="cpu"):
    return torch.tensor(values, dtype=dtype, device=device)


def _inplace(fn):
    """An in-place call as a function returning the mutated tensor."""

    def run(x, *rest):
        fn(x, *rest)
        return x

    return run


def _fa():
    import fusedact.functional as FA

    return FA


def _fn():
    import fusedact.nn as FN

    return FN


# ---------------------------------------------------------------------------------------
# Case table. Imports of fusedact happen inside the callables, so that collecting this file
# in the parent does not depend on anything beyond the case ids.

from fusedact.registry import OPS  # noqa: E402  (pure Python registry; loads the extension)

# The torch built-in each unary op is the counterpart of (None: no built-in, floats only).
def _torch_counterpart(spec):
    if spec.name in ("sigmoid", "tanh"):
        return getattr(torch, spec.name)
    if spec.name in ("swish", "quick_gelu", "relu_squared"):
        return None
    return getattr(F, spec.name)


INT_VALUES = [-7, -3, -1, 0, 1, 2, 5, 6, 7]
DTYPE_INPUTS = {
    "int32": lambda: _t(INT_VALUES, torch.int32),
    "int64": lambda: _t(INT_VALUES, torch.int64),
    "bool": lambda: _t([True, False, True, False], torch.bool),
    "complex64": lambda: _t([1 + 1j, -2 + 0.5j, 0j, 3 - 2j], torch.complex64),
}

# 1. dtypes of every unary op: integer, bool, complex, against the torch built-in.
for _spec in OPS:
    if _spec.kind != "unary":
        continue
    _params = dict(_spec.param_sets[0])
    _counterpart = _torch_counterpart(_spec)
    for _dt in ("int32", "bool", "complex64"):
        case(
            f"{_spec.name}-{_dt}",
            (lambda mk: lambda: (mk(),))(DTYPE_INPUTS[_dt]),
            (lambda s, p: lambda x: s.op(x, **p))(_spec, _params),
            expect="raise" if _counterpart is None else "like_torch",
            ops=_spec.name,
            args="input",
            torch_fn=None if _counterpart is None else (lambda f, p: lambda x: f(x, **p))(_counterpart, _params),
        )

# In-place forms on integer / bool / complex input, against torch's inplace=True.
for _name, _dt in [("relu", "bool"), ("relu", "complex64"), ("relu6", "int64"), ("silu", "complex64"),
                   ("silu", "int64"), ("mish", "int32"), ("elu", "bool"), ("hardtanh", "int32"),
                   ("hardswish", "complex64"), ("threshold", "bool"), ("leaky_relu", "int64")]:
    _spec = next(s for s in OPS if s.name == _name)
    _params = dict(_spec.param_sets[0])
    case(
        f"{_name}_-{_dt}",
        (lambda mk: lambda: (mk(),))(DTYPE_INPUTS[_dt]),
        (lambda n, p: _inplace(lambda x: getattr(_ops(), n + "_")(x, **p)))(_name, _params),
        expect="like_torch",
        ops=(_name + "_", _name),
        args="input",
        torch_fn=(lambda n, p: lambda x: getattr(F, n)(x, **p, inplace=True))(_name, _params),
    )

# Gated ops: integer / bool / complex packed and split input (glu against F.glu; the others
# have no built-in and take floating input only).
for _spec in OPS:
    if _spec.kind != "gated":
        continue
    for _dt in ("int64", "bool", "complex64"):
        _mk = {
            "int64": lambda: (_t([[1, -2, 3, 4]], torch.int64),),
            "bool": lambda: (_t([[True, False, True, True]], torch.bool),),
            "complex64": lambda: (_t([[1j, 2, -1, 0.5j]], torch.complex64),),
        }[_dt]
        case(
            f"{_spec.name}-packed-{_dt}",
            _mk,
            (lambda s: lambda x: s.op(x))(_spec),
            expect="like_torch" if _spec.name == "glu" else "raise",
            ops=_spec.name,
            args="input",
            torch_fn=(lambda x: F.glu(x)) if _spec.name == "glu" else None,
        )
    case(
        f"{_spec.name}-split-int64-gate",
        lambda: (_t([[1, -2]], torch.int64), _t([[1, 2]], torch.int64)),
        (lambda s: lambda g, u: s.op.split(g, u))(_spec),
        ops=_spec.name,
        args=("gate", "up"),
    )

# 2. The gated dim: odd sizes, 0-dim input, dims far out of range, non-int dims.
for _spec in OPS:
    if _spec.kind != "gated":
        continue
    n = _spec.name
    case(f"{n}-odd-mid-dim", lambda: (torch.randn(2, 5, 4),), (lambda s: lambda x: s.op(x, dim=1))(_spec),
         ops=n, args=("input", "dim"))
    case(f"{n}-odd-size-1", lambda: (torch.randn(1),), (lambda s: lambda x: s.op(x))(_spec),
         ops=n, args=("input", "dim"))
    case(f"{n}-0-dim", lambda: (torch.tensor(1.5),), (lambda s: lambda x: s.op(x, dim=0))(_spec),
         ops=n, args=("input", "dim"))
    case(f"{n}-dim-2**62", lambda: (torch.randn(2, 4),), (lambda s: lambda x: s.op(x, dim=2**62))(_spec),
         ops=n, args="dim")
    case(f"{n}-dim-min-int64", lambda: (torch.randn(2, 4),), (lambda s: lambda x: s.op(x, dim=-(2**63)))(_spec),
         ops=n, args="dim")
    case(f"{n}-dim-float", lambda: (torch.randn(2, 4),), (lambda s: lambda x: s.op(x, dim=1.5))(_spec),
         ops=n, args="dim")
    case(f"{n}_backward-dim-2**62", lambda: (torch.randn(2, 2), torch.randn(2, 4)),
         (lambda s: lambda g, x: s.backward_op(g, x, dim=2**62))(_spec), ops=n + "_backward", args="dim")
    case(f"{n}_backward-odd-dim", lambda: (torch.randn(2, 2), torch.randn(2, 5)),
         (lambda s: lambda g, x: s.backward_op(g, x, dim=-1))(_spec), ops=n + "_backward",
         args=("input", "dim", "grad_output"))

# glu against torch itself: same rejections as F.glu.
case("glu-0-dim-like-torch", lambda: (torch.tensor(2.0),), lambda x: _ops().glu(x, dim=0),
     expect="like_torch", ops="glu", args=("input", "dim"), torch_fn=lambda x: F.glu(x, dim=0))
case("glu-odd-like-torch", lambda: (torch.randn(3, 7),), lambda x: _ops().glu(x), expect="like_torch",
     ops="glu", args=("input", "dim"), torch_fn=lambda x: F.glu(x))

# 3. gate / up of the split overloads: shape, dtype, device (meta vs cpu), None.
for _spec in OPS:
    if _spec.kind != "gated":
        continue
    n = _spec.name
    split = (lambda s: lambda g, u: s.op.split(g, u))(_spec)
    case(f"{n}.split-shape", lambda: (torch.randn(3, 4), torch.randn(3, 5)), split, ops=n, args=("gate", "up"))
    case(f"{n}.split-broadcastable", lambda: (torch.randn(3, 4), torch.randn(1, 4)), split, ops=n,
         args=("gate", "up"))
    case(f"{n}.split-0d-vs-1", lambda: (torch.randn(()), torch.randn(1)), split, ops=n, args=("gate", "up"))
    case(f"{n}.split-dtype", lambda: (torch.randn(3, 4), torch.randn(3, 4, dtype=torch.float64)), split,
         ops=n, args=("gate", "up"))
    case(f"{n}.split-device-up-meta", lambda: (torch.randn(3, 4), torch.empty(3, 4, device="meta")), split,
         ops=n, args=("gate", "up"))
    case(f"{n}.split-device-gate-meta", lambda: (torch.empty(3, 4, device="meta"), torch.randn(3, 4)), split,
         ops=n, args=("gate", "up"))
    case(f"{n}.split-up-None", lambda: (torch.randn(3, 4), None), split, ops=n, args="up")
    case(
        f"{n}_backward.split-grad-meta",
        lambda: (torch.empty(3, 4, device="meta"), torch.randn(3, 4), torch.randn(3, 4)),
        (lambda s: lambda g, a, b: s.backward_op.split(g, a, b))(_spec),
        ops=n + "_backward",
        args=("grad_output", "gate", "up"),
    )
case("swiglu_split-functional-shape", lambda: (torch.randn(2, 3), torch.randn(3, 2)),
     lambda g, u: _fa().swiglu_split(g, u), ops="swiglu", args=("gate", "up"))

# 4. Weighted ops: the weight's shape, dtype, device, None.
for n in ("prelu", "learnable_swish"):
    op = (lambda n: lambda x, w: getattr(_ops(), n)(x, w))(n)
    torch_prelu = (lambda x, w: F.prelu(x, w)) if n == "prelu" else None
    kw = dict(expect="like_torch", torch_fn=torch_prelu) if n == "prelu" else dict(expect="raise")
    case(f"{n}-weight-numel", lambda: (torch.randn(3, 5), torch.rand(4)), op, ops=n, args="weight", **kw)
    case(f"{n}-weight-2d", lambda: (torch.randn(3, 5), torch.rand(1, 5)), op, ops=n, args="weight", **kw)
    case(f"{n}-weight-empty", lambda: (torch.randn(3, 5), torch.rand(0)), op, ops=n, args="weight", **kw)
    case(f"{n}-weight-1d-input", lambda: (torch.randn(5), torch.rand(5)), op, ops=n, args="weight", **kw)
    case(f"{n}-weight-int64", lambda: (torch.randn(3, 5), torch.ones(5, dtype=torch.int64)), op, ops=n,
         args="weight", **kw)
    case(f"{n}-weight-float64", lambda: (torch.randn(3, 5), torch.rand(5, dtype=torch.float64)), op, ops=n,
         args="weight", **kw)
    case(f"{n}-weight-complex", lambda: (torch.randn(3, 5), torch.rand(5, dtype=torch.complex64)), op, ops=n,
         args="weight", **kw)
    case(f"{n}-weight-meta", lambda: (torch.randn(3, 5), torch.empty(5, device="meta")), op, ops=n,
         args="weight")
    case(f"{n}-input-meta", lambda: (torch.empty(3, 5, device="meta"), torch.rand(5)), op, ops=n,
         args=("input", "weight"))
    case(f"{n}-weight-None", lambda: (torch.randn(3, 5), None), op, ops=n, args="weight")
    case(f"{n}-input-int64", lambda: (torch.ones(3, 5, dtype=torch.int64), torch.rand(5)), op, ops=n,
         args="input", **kw)
case("prelu_backward-weight-numel", lambda: (torch.randn(3, 5), torch.randn(3, 5), torch.rand(4)),
     lambda g, x, w: _ops().prelu_backward(g, x, w), ops="prelu_backward", args="weight")
case("PReLU-module-channels", lambda: (torch.randn(2, 5, 3),), lambda x: _fn().PReLU(4)(x), ops="prelu",
     args="weight", expect="like_torch", torch_fn=lambda x: torch.nn.PReLU(4)(x))

# 4b. Row-wise ops (softmax, log_softmax, softmin): input dtypes with and without dtype=, a
# bad dtype=, the row dim (out of range, 0-dim input, not an int), the backward's
# grad_output / output (shape, dtype, device, dim), None; against torch.nn.functional.
for _spec in OPS:
    if _spec.kind != "rowwise":
        continue
    n = _spec.name
    _ref = (lambda f: lambda x, *a, **k: f(x, *a, **k))(getattr(F, n))
    _op = (lambda s: lambda x, *a, **k: s.op(x, *a, **k))(_spec)
    for _dt in ("int32", "bool", "complex64"):
        case(f"{n}-{_dt}", (lambda mk: lambda: (mk(),))(DTYPE_INPUTS[_dt]),
             (lambda o: lambda x: o(x, -1))(_op), "like_torch", n, "input",
             (lambda r: lambda x: r(x, -1))(_ref))
    # Integer / bool input with a floating dtype= runs, as torch (torch's softmin negates in the
    # input's dtype before the cast: bool raises, uint8 wraps, int8's -128 stays -128).
    for _dt, _mk in (("int64", DTYPE_INPUTS["int64"]), ("bool", DTYPE_INPUTS["bool"]),
                     ("uint8", lambda: _t([1, 0, 2, 255], torch.uint8)),
                     ("int8", lambda: _t([-128, 0, 5, 127], torch.int8))):
        case(f"{n}-{_dt}-dtype-float32", (lambda mk: lambda: (mk(),))(_mk),
             (lambda o: lambda x: o(x, -1, torch.float32))(_op), "like_torch", n, ("input", "dtype"),
             (lambda r: lambda x: r(x, -1, dtype=torch.float32))(_ref))
    for _dt, _did in ((torch.int64, "int64"), (torch.bool, "bool"), (torch.complex64, "complex64")):
        case(f"{n}-dtype-{_did}", lambda: (torch.randn(2, 3),),
             (lambda o, d: lambda x: o(x, -1, d))(_op, _dt), "like_torch", n, ("input", "dtype"),
             (lambda r, d: lambda x: r(x, -1, dtype=d))(_ref, _dt))
    case(f"{n}-dtype-str", lambda: (torch.randn(2, 3),), (lambda o: lambda x: o(x, -1, "float32"))(_op),
         ops=n, args="dtype")
    for _d in (2, -3, 2**62, -(2**63)):
        case(f"{n}-dim-{_d}", lambda: (torch.randn(2, 3),), (lambda o, d: lambda x: o(x, d))(_op, _d),
             "like_torch", n, "dim", (lambda r, d: lambda x: r(x, d))(_ref, _d))
    for _d in (0, -1, 1, -2):  # a 0-dim tensor is a row of one element: dim 0 or -1 only
        case(f"{n}-0-dim-input-dim-{_d}", lambda: (torch.tensor(1.5),), (lambda o, d: lambda x: o(x, d))(_op, _d),
             "like_torch", n, "dim", (lambda r, d: lambda x: r(x, d))(_ref, _d))
    case(f"{n}-dim-float", lambda: (torch.randn(2, 3),), (lambda o: lambda x: o(x, 1.5))(_op), ops=n, args="dim")
    case(f"{n}-dim-None", lambda: (torch.randn(2, 3),), (lambda o: lambda x: o(x, None))(_op), ops=n, args="dim")
    case(f"{n}-input-None", lambda: (None,), (lambda o: lambda x: o(x, -1))(_op), ops=n, args="input")
    case(f"{n}-input-meta-like-cpu", lambda: (torch.empty(2, 3, device="meta"),),
         (lambda o: lambda x: o(x, -1))(_op), "like_torch", n, "input", (lambda r: lambda x: r(x, -1))(_ref))
    case(f"{n}-sparse", lambda: (torch.tensor([[0.0, -1.0], [2.0, 0.0]]).to_sparse(),),
         (lambda o: lambda x: o(x, -1))(_op), ops=n, args=("input", "SparseCPU", "backend"))
    b = n + "_backward"
    _bw = (lambda s: lambda g, y, d=-1: s.backward_op(g, y, d))(_spec)
    case(f"{b}-shape", lambda: (torch.randn(2, 4), torch.rand(2, 3)), _bw, ops=b, args=("grad_output", "output"))
    case(f"{b}-broadcastable", lambda: (torch.randn(1, 3), torch.rand(2, 3)), _bw, ops=b,
         args=("grad_output", "output"))
    case(f"{b}-dtype", lambda: (torch.randn(2, 3, dtype=torch.float64), torch.rand(2, 3)), _bw, ops=b,
         args=("grad_output", "output"))
    case(f"{b}-grad-meta", lambda: (torch.empty(2, 3, device="meta"), torch.rand(2, 3)), _bw, ops=b,
         args=("grad_output", "output"))
    case(f"{b}-output-meta", lambda: (torch.randn(2, 3), torch.empty(2, 3, device="meta")), _bw, ops=b,
         args=("grad_output", "output"))
    case(f"{b}-int64", lambda: (torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3, dtype=torch.int64)), _bw,
         ops=b, args=("grad_output", "output"))
    case(f"{b}-dim-2", lambda: (torch.randn(2, 3), torch.rand(2, 3), 2), _bw, ops=b, args="dim")
    case(f"{b}-dim-min-int64", lambda: (torch.randn(2, 3), torch.rand(2, 3), -(2**63)), _bw, ops=b, args="dim")
    case(f"{b}-grad-None", lambda: (None, torch.rand(2, 3)), _bw, ops=b, args="grad_output")
# The Python layer: a bad dim / dtype through fusedact.functional and fusedact.nn, as torch's.
case("softmax-functional-dim-2", lambda: (torch.randn(2, 3),), lambda x: _fa().softmax(x, 2), "like_torch",
     "softmax", "dim", lambda x: F.softmax(x, 2))
case("log_softmax-functional-int-no-dtype", lambda: (_t(INT_VALUES, torch.int64),),
     lambda x: _fa().log_softmax(x, 0), "like_torch", "log_softmax", "input", lambda x: F.log_softmax(x, 0))
case("Softmin-module-dim-3", lambda: (torch.randn(2, 3),), lambda x: _fn().Softmin(dim=3)(x), "like_torch",
     "softmin", "dim", lambda x: torch.nn.Softmin(dim=3)(x))


# 5. String and numeric keyword arguments, decided by torch where it has the op.
X5 = lambda: (_t([-2.0, -0.5, 0.0, 0.5, 2.0]),)  # noqa: E731
case("gelu-approximate-x", X5, lambda x: _ops().gelu(x, approximate="x"), "like_torch", "gelu", "approximate",
     lambda x: F.gelu(x, approximate="x"))
case("gelu-approximate-None", X5, lambda x: _ops().gelu(x, approximate=None), ops="gelu", args="approximate")
case("gelu-approximate-int", X5, lambda x: _ops().gelu(x, approximate=1), ops="gelu", args="approximate")
case("gelu-approximate-nul", X5, lambda x: _ops().gelu(x, approximate="tanh\0"), "like_torch", "gelu",
     "approximate", lambda x: F.gelu(x, approximate="tanh\0"))
case("GELU-module-approximate", X5, lambda x: _fn().GELU(approximate="x")(x), "like_torch", "gelu",
     "approximate", lambda x: torch.nn.GELU(approximate="x")(x))
case("geglu-approximate-x", lambda: (torch.randn(2, 4),), lambda x: _ops().geglu(x, approximate="x"),
     ops="geglu", args="approximate")
case("geglu.split-approximate-x", lambda: (torch.randn(2, 2), torch.randn(2, 2)),
     lambda g, u: _ops().geglu.split(g, u, approximate="x"), ops="geglu", args="approximate")
case("elu-alpha-str", X5, lambda x: _ops().elu(x, "a"), ops="elu", args="alpha")
case("threshold-missing-value", X5, lambda x: _ops().threshold(x, 1.0), ops="threshold", args="value")
for _n, _fnc in [("celu", lambda x: _ops().celu(x, 0.0)), ("celu_", _inplace(lambda x: _ops().celu_(x, 0.0)))]:
    case(f"{_n}-alpha-0", X5, _fnc, "like_torch", ("celu", "celu_"), "alpha",
         (lambda ip: lambda x: F.celu(x, 0.0, inplace=ip))(_n.endswith("_")))
case("CELU-module-alpha-0", X5, lambda x: _fn().CELU(0.0)(x), "like_torch", "celu", "alpha",
     lambda x: torch.nn.CELU(0.0)(x))
case("celu-alpha-negative", X5, lambda x: _ops().celu(x, -1.5), "like_torch", "celu", "alpha",
     lambda x: F.celu(x, -1.5))
case("elu-alpha-0", X5, lambda x: _ops().elu(x, 0.0), "like_torch", "elu", "alpha", lambda x: F.elu(x, 0.0))
case("softplus-beta-0", X5, lambda x: _ops().softplus(x, 0.0, 20.0), "like_torch", "softplus", "beta",
     lambda x: F.softplus(x, 0.0, 20.0))
case("softplus-beta-negative", X5, lambda x: _ops().softplus(x, -1.0, 20.0), "like_torch", "softplus", "beta",
     lambda x: F.softplus(x, -1.0, 20.0))
case("softplus_backward-beta-0", lambda: (torch.ones(5), X5()[0]),
     lambda g, x: _ops().softplus_backward(g, x, 0.0, 20.0), "like_torch", "softplus_backward", "beta",
     lambda g, x: torch.ops.aten.softplus_backward(g, x, 0.0, 20.0))
case("softplus-threshold-nan", X5, lambda x: _ops().softplus(x, 1.0, math.nan), "like_torch", "softplus",
     "threshold", lambda x: F.softplus(x, 1.0, math.nan))
case("softplus-threshold-negative", X5, lambda x: _ops().softplus(x, 1.0, -1.0), "like_torch", "softplus",
     "threshold", lambda x: F.softplus(x, 1.0, -1.0))
for _ip in (False, True):
    _sfx = "_" if _ip else ""
    _call = (lambda ip: (lambda mn, mx: _inplace(lambda x: _ops().hardtanh_(x, mn, mx)) if ip
                         else (lambda x: _ops().hardtanh(x, mn, mx))))(_ip)
    case(f"hardtanh{_sfx}-min-gt-max", X5, _call(2.0, 1.0), "like_torch", ("hardtanh", "hardtanh_"),
         ("min_val", "max_val"), (lambda ip: lambda x: F.hardtanh(x, 2.0, 1.0, inplace=ip))(_ip))
    case(f"hardtanh{_sfx}-min-nan", X5, _call(math.nan, 1.0), "like_torch", ("hardtanh", "hardtanh_"),
         ("min_val", "max_val"), (lambda ip: lambda x: F.hardtanh(x, math.nan, 1.0, inplace=ip))(_ip))
case("Hardtanh-module-min-gt-max", X5, lambda x: _fn().Hardtanh(2.0, 1.0)(x), "like_torch", "hardtanh",
     ("min_val", "max_val"), lambda x: torch.nn.Hardtanh(2.0, 1.0)(x))
for _lam, _lid, _dt in [(-1.0, "negative", torch.float32), (math.nan, "nan", torch.float32),
                        (math.inf, "inf", torch.float32), (1e39, "1e39", torch.float32),
                        (1e5, "1e5-float16", torch.float16)]:
    case(f"softshrink-lambd-{_lid}", (lambda dt: lambda: (_t([-2.0, -0.5, 0.0, 0.5, 2.0], dt),))(_dt),
         (lambda l: lambda x: _ops().softshrink(x, l))(_lam), "like_torch", "softshrink", "lambd",
         (lambda l: lambda x: F.softshrink(x, l))(_lam))
case("hardshrink-lambd-negative", X5, lambda x: _ops().hardshrink(x, -1.0), "like_torch", "hardshrink", "lambd",
     lambda x: F.hardshrink(x, -1.0))
case("leaky_relu-slope-nan", X5, lambda x: _ops().leaky_relu(x, math.nan), "like_torch", "leaky_relu",
     "negative_slope", lambda x: F.leaky_relu(x, math.nan))
case("threshold-nan", X5, lambda x: _ops().threshold(x, math.nan, 1.0), "like_torch", "threshold", "threshold",
     lambda x: F.threshold(x, math.nan, 1.0))
for _ip in (False, True):
    _sfx = "_" if _ip else ""
    case(f"threshold{_sfx}-uint8-negative", lambda: (_t([0, 1, 5, 200], torch.uint8),),
         (lambda ip: _inplace(lambda x: _ops().threshold_(x, -2.0, 1.0)) if ip
          else (lambda x: _ops().threshold(x, -2.0, 1.0)))(_ip),
         "like_torch", ("threshold", "threshold_"), ("threshold", "value", "input"),
         (lambda ip: lambda x: F.threshold(x, -2.0, 1.0, inplace=ip))(_ip))

# Scalar parameters that overflow the dtype (or its op math, float for the half types), which
# torch's checked scalar conversion rejects; and the values just inside the range it accepts.
for _n, _p, _arg, _dt in [
    ("hardtanh", (math.nan, 1.0), "min_val", torch.int64), ("hardtanh", (-1.0, math.nan), "max_val", torch.float32),
    ("hardtanh", (-1e40, 1.0), "min_val", torch.float32), ("hardtanh", (-1.0, 1e5), "max_val", torch.float16),
    ("hardtanh", (-1.0, 1e5), "max_val", torch.bfloat16), ("hardtanh", (0.0, 300.0), "max_val", torch.uint8),
    ("threshold", (1e5, 1.0), "threshold", torch.float16), ("threshold", (1.0, 1e5), "value", torch.float16),
    ("threshold", (1.0, 1e39), "value", torch.bfloat16), ("threshold", (2.0, 1000.0), "value", torch.int8),
    ("threshold", (1e10, 1.0), "threshold", torch.int32), ("threshold", (math.nan, 1.0), "threshold", torch.int64),
    ("threshold", (math.inf, 1.0), "threshold", torch.float32), ("softshrink", (1e5,), "lambd", torch.bfloat16),
    ("softshrink", (65504.0,), "lambd", torch.float16), ("leaky_relu", (1e40,), "negative_slope", torch.float32),
    ("leaky_relu", (1e40,), "negative_slope", torch.float64), ("elu", (1e40,), "alpha", torch.float32),
    ("celu", (1e40,), "alpha", torch.bfloat16), ("softplus", (1e40, 1.0), "beta", torch.float32),
    ("softplus", (1.0, 1e40), "threshold", torch.float16), ("hardshrink", (1e40,), "lambd", torch.float32),
]:
    case(f"{_n}-{_arg}-{'-'.join(map(str, _p))}-{str(_dt)[6:]}", (lambda dt: lambda: (_t([0, 1, 3, 100], dt),))(_dt),
         (lambda n, p: lambda x: getattr(_ops(), n)(x, *p))(_n, _p), "like_torch", _n, _arg,
         (lambda n, p: lambda x: getattr(F, n)(x, *p))(_n, _p))

# rrelu: bounds (order, finiteness), in both modes and in place; the noise tensor.
for _lo, _hi, _lid in [(0.5, 0.25, "lower-gt-upper"), (math.nan, 0.3, "lower-nan"),
                       (-math.inf, 0.3, "lower-inf"), (0.1, math.inf, "upper-inf")]:
    for _tr in (False, True):
        _mode = "train" if _tr else "eval"
        case(f"rrelu-{_lid}-{_mode}", X5, (lambda lo, hi, tr: lambda x: _fa().rrelu(x, lo, hi, tr))(_lo, _hi, _tr),
             "like_torch", "rrelu", ("lower", "upper"), (lambda lo, hi, tr: lambda x: F.rrelu(x, lo, hi, tr))(_lo, _hi, _tr))
case("rrelu_-lower-gt-upper", X5, _inplace(lambda x: _ops().rrelu_(x, 0.5, 0.25, True)), "like_torch",
     ("rrelu_", "rrelu"), ("lower", "upper"), lambda x: F.rrelu(x, 0.5, 0.25, True, inplace=True))
case("RReLU-module-lower-gt-upper", X5, lambda x: _fn().RReLU(0.5, 0.25)(x), "like_torch", "rrelu",
     ("lower", "upper"), lambda x: torch.nn.RReLU(0.5, 0.25)(x))
case("rrelu_with_noise-shape", lambda: (torch.randn(3, 4), torch.rand(3)),
     lambda x, z: _ops().rrelu_with_noise(x, z), ops="rrelu_with_noise", args="noise")
case("rrelu_with_noise-dtype", lambda: (torch.randn(3, 4), torch.rand(3, 4, dtype=torch.float64)),
     lambda x, z: _ops().rrelu_with_noise(x, z), ops="rrelu_with_noise", args="noise")
case("rrelu_with_noise-meta", lambda: (torch.randn(3, 4), torch.empty(3, 4, device="meta")),
     lambda x, z: _ops().rrelu_with_noise(x, z), ops="rrelu_with_noise", args="noise")
case("rrelu_with_noise-None", lambda: (torch.randn(3, 4), None),
     lambda x, z: _ops().rrelu_with_noise(x, z), ops="rrelu_with_noise", args="noise")

# None and non-tensors where a tensor is expected.
case("gelu-input-None", lambda: (None,), lambda x: _ops().gelu(x), ops="gelu", args="input")
case("gelu-input-list", lambda: ([1.0, 2.0],), lambda x: _ops().gelu(x), ops="gelu", args="input")
case("relu_-input-None", lambda: (None,), lambda x: _ops().relu_(x), ops="relu_", args="input")
case("gelu_backward-grad-None", lambda: (None, torch.randn(3)), lambda g, x: _ops().gelu_backward(g, x),
     ops="gelu_backward", args="grad_output")
case("gelu_backward-input-None", lambda: (torch.randn(3), None), lambda g, x: _ops().gelu_backward(g, x),
     ops="gelu_backward", args="input")
case("swiglu_backward-grad-None", lambda: (None, torch.randn(3, 4)), lambda g, x: _ops().swiglu_backward(g, x),
     ops="swiglu_backward", args="grad_output")

# Backward ops: grad_output / input of another dtype or device.
case("gelu_backward-dtype", lambda: (torch.randn(3, dtype=torch.float64), torch.randn(3)),
     lambda g, x: _ops().gelu_backward(g, x), ops="gelu_backward", args=("grad_output", "input"))
case("silu_backward-device-meta", lambda: (torch.empty(3, device="meta"), torch.randn(3)),
     lambda g, x: _ops().silu_backward(g, x), ops="silu_backward", args=("grad_output", "input"))
case("sigmoid_backward-output-meta", lambda: (torch.randn(3), torch.empty(3, device="meta")),
     lambda g, y: _ops().sigmoid_backward(g, y), ops="sigmoid_backward", args=("grad_output", "output"))

# 6. In-place ops and autograd: what torch forbids.
_INPLACE = [s for s in OPS if s.inplace]
for _spec in _INPLACE:
    n = _spec.name
    _params = dict(_spec.param_sets[0])
    if n == "rrelu":
        _tf = lambda x: F.rrelu(x, inplace=True)  # noqa: E731
    else:
        _tf = (lambda n, p: lambda x: getattr(F, n)(x, **p, inplace=True))(n, _params)
    case(f"{n}_-leaf-requires-grad", lambda: (torch.randn(4, requires_grad=True),),
         (lambda n, p: lambda x: getattr(_ops(), n + "_")(x, **p))(n, _params), "core", torch_fn=_tf,
         fragment="a leaf Variable that requires grad is being used in an in-place operation")


def _view_of_leaf():
    return (torch.randn(3, 2, requires_grad=True)[0],)


def _no_grad_view():
    a = torch.randn(5, requires_grad=True) * 1
    with torch.no_grad():
        v = a[1:]
    return (v,)


def _multi_output_view():
    return ((torch.randn(2, 5, requires_grad=True) * 1).unbind(0)[0],)


def _inference_tensor():
    with torch.inference_mode():
        t = torch.randn(5)
    return (t,)


def _overlapping():
    return (torch.zeros(1).expand(4),)


for _n, _mk, _frag in [
    ("relu", _view_of_leaf, "a view of a leaf Variable that requires grad is being used in an in-place operation"),
    ("silu", _no_grad_view, "A view was created in no_grad mode and is being modified inplace with grad mode enabled"),
    ("mish", _multi_output_view, "This view is the output of a function that returns multiple views"),
    ("relu", _inference_tensor, "Inplace update to inference tensor outside InferenceMode is not allowed"),
    ("silu", _inference_tensor, "Inplace update to inference tensor outside InferenceMode is not allowed"),
    ("elu", _overlapping, "more than one element of the written-to tensor refers to a single memory location"),
    ("hardswish", _overlapping, "more than one element of the written-to tensor refers to a single memory location"),
]:
    _what = {_view_of_leaf: "view-of-leaf", _no_grad_view: "no-grad-view", _multi_output_view: "multi-output-view",
             _inference_tensor: "inference-tensor", _overlapping: "internal-overlap"}[_mk]
    case(f"{_n}_-{_what}", _mk, (lambda n: lambda x: getattr(_ops(), n + "_")(x))(_n), "core",
         torch_fn=(lambda n: lambda x: getattr(F, n)(x, inplace=True))(_n), fragment=_frag)


def _modify_saved_then_backward(forward, inplace):
    """forward saves its input (or output) for the backward; inplace then changes it."""

    def run(leaf):
        a = leaf * 1
        y = forward(a)
        inplace(a if forward.__name__ != "saves_output" else y)
        y.sum().backward()
        return leaf.grad

    return run


def _saves_output(fn):
    def saves_output(t):
        return fn(t)

    return saves_output


_VERSION = "one of the variables needed for gradient computation has been modified by an inplace operation"
for _id, _ours, _theirs in [
    ("silu-input-modified-by-relu_", _modify_saved_then_backward(lambda t: _ops().silu(t), lambda t: _ops().relu_(t)),
     _modify_saved_then_backward(F.silu, torch.relu_)),
    ("gelu-input-modified-by-elu_", _modify_saved_then_backward(lambda t: _ops().gelu(t), lambda t: _ops().elu_(t)),
     _modify_saved_then_backward(F.gelu, F.elu_)),
    ("sigmoid-output-modified-by-relu_",
     _modify_saved_then_backward(_saves_output(lambda t: _ops().sigmoid(t)), lambda t: _ops().relu_(t)),
     _modify_saved_then_backward(_saves_output(torch.sigmoid), torch.relu_)),
    ("tanh-output-modified-by-silu_",
     _modify_saved_then_backward(_saves_output(lambda t: _ops().tanh(t)), lambda t: _ops().silu_(t)),
     _modify_saved_then_backward(_saves_output(torch.tanh), lambda t: F.silu(t, inplace=True))),
    ("swiglu-input-modified-by-relu_",
     _modify_saved_then_backward(lambda t: _ops().swiglu(t), lambda t: _ops().relu_(t)),
     _modify_saved_then_backward(lambda t: F.silu(t[..., :2]) * t[..., 2:], torch.relu_)),
    ("prelu-input-modified-by-hardtanh_",
     _modify_saved_then_backward(lambda t: _ops().prelu(t, torch.tensor([0.2])), lambda t: _ops().hardtanh_(t)),
     _modify_saved_then_backward(lambda t: F.prelu(t, torch.tensor([0.2])), F.hardtanh_)),
]:
    case(_id, lambda: (torch.randn(2, 4, requires_grad=True),), _ours, "core", torch_fn=_theirs, fragment=_VERSION)


def _inplace_backward(fn):
    def run(leaf):
        a = leaf * 1
        fn(a)
        a.sum().backward()
        return leaf.grad

    return run


# The in-place forms whose backward reads their result cannot tell the branch with a
# negative slope / alpha: torch raises at backward; so must fusedact.
for _n, _p, _arg in [("leaky_relu", {"negative_slope": -0.5}, "negative_slope"), ("elu", {"alpha": -0.5}, "alpha"),
                     ("celu", {"alpha": -0.5}, "alpha")]:
    case(f"{_n}_-negative-{_arg}-backward", lambda: (torch.tensor([-1.0, 2.0, -3.0], requires_grad=True),),
         (lambda n, p: _inplace_backward(lambda a: getattr(_ops(), n + "_")(a, **p)))(_n, _p), "like_torch",
         (_n + "_", _n + "_result_backward", _n), _arg,
         (lambda n, p: _inplace_backward(lambda a: getattr(F, n + "_")(a, *p.values())))(_n, _p))

# Layouts the ops have no kernel for: a clean error naming the op (the dispatcher's "Could
# not run 'fusedact::X' with arguments from the 'SparseCPU' backend" names the layout).
for _n, _mk in [("relu", lambda: (torch.tensor([[0.0, -1.0], [2.0, 0.0]]).to_sparse(),)),
                ("gelu", lambda: (torch.tensor([[0.0, -1.0], [2.0, 0.0]]).to_sparse(),)),
                ("swiglu", lambda: (torch.tensor([[0.0, -1.0], [2.0, 0.0]]).to_sparse(),)),
                ("silu", lambda: (torch.quantize_per_tensor(torch.randn(4), 0.1, 0, torch.qint8),))]:
    case(f"{_n}-{'quantized' if _n == 'silu' else 'sparse'}", _mk, (lambda n: lambda x: getattr(_ops(), n)(x))(_n),
         ops=_n, args=("input", "SparseCPU", "QuantizedCPU", "backend"))


# The harness's own check (test_child_crash_is_reported): a case that kills the child.
if os.environ.get("FUSEDACT_BAD_INPUTS_SELFTEST") == "1":
    case("selftest-segfault", lambda: (), lambda: os.kill(os.getpid(), signal.SIGSEGV), ops="none", args="none")


# ---------------------------------------------------------------------------------------
# The child: runs the cases named on stdin, one JSON line per case on stdout.


def _outcome(fn, args):
    try:
        value = fn(*args)
    except BaseException as error:  # noqa: BLE001  (KeyboardInterrupt too: report, go on)
        return {"raised": True, "type": type(error).__name__,
                "mro": [c.__name__ for c in type(error).__mro__], "message": str(error)}, None
    return {"raised": False, "summary": _summary(value)}, value


def _summary(value):
    if isinstance(value, torch.Tensor):
        return f"Tensor(dtype={value.dtype}, shape={tuple(value.shape)}, layout={value.layout})"
    return repr(value)[:200]


def _compare(ours, theirs):
    """None where the results agree (dtype and values), else a description."""
    from torch.testing import assert_close

    if not isinstance(ours, torch.Tensor) or not isinstance(theirs, torch.Tensor):
        return None if ours is None and theirs is None else f"fusedact {_summary(ours)} vs torch {_summary(theirs)}"
    try:
        assert_close(ours, theirs, equal_nan=True)
    except AssertionError as error:
        return str(error)
    return None


def _tensors(args):
    """The dense, readable tensors among args (whose values a failed call must not change)."""
    return [a for a in args if isinstance(a, torch.Tensor) and a.layout == torch.strided and a.device.type != "meta"
            and not a.is_quantized and not a.is_inference()]


def _same(a, b):
    a = a.detach()
    if a.is_floating_point() or a.is_complex():
        return torch.equal(a.isnan(), b.isnan()) and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    return torch.equal(a, b)


def run_case(c: Case):
    torch.manual_seed(0)
    args = c.make()
    before = [t.detach().clone() for t in _tensors(args)]
    ours, ours_value = _outcome(c.ours, args)
    changed = False
    if ours["raised"]:
        after = _tensors(args)
        changed = any(not _same(a, b) for a, b in zip(after, before))
    result = {"id": c.id, "ours": ours, "input_changed_by_failed_call": changed}
    if c.torch_fn is not None:
        torch.manual_seed(0)
        theirs, theirs_value = _outcome(c.torch_fn, c.make())
        result["torch"] = theirs
        if not ours["raised"] and not theirs["raised"]:
            result["mismatch"] = _compare(ours_value, theirs_value)
    return result


def child_main():
    import warnings

    warnings.simplefilter("ignore")
    ids = json.loads(sys.stdin.read())
    by_id = {c.id: c for c in CASES}
    out = sys.stdout
    for cid in ids:
        out.write(json.dumps({"start": cid}) + "\n")
        out.flush()
        out.write(json.dumps(run_case(by_id[cid])) + "\n")
        out.flush()


# ---------------------------------------------------------------------------------------
# The parent (pytest).

CHILD_TIMEOUT_S = 300


def _run_children(ids, extra_env=None):
    """{id: result} for every case; a case during which the child died or hung gets
    {"crash": description}, and a new child runs the cases after it."""
    results = {}
    remaining = list(ids)
    env = dict(os.environ, **(extra_env or {}))
    env["FUSEDACT_FILL_OUTPUTS_WITH_NAN"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.join(HERE, "..", "..", "python")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    while remaining:
        try:
            proc = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child"],
                input=json.dumps(remaining), capture_output=True, text=True, env=env, timeout=CHILD_TIMEOUT_S,
            )
            stdout, rc, stderr = proc.stdout, proc.returncode, proc.stderr
        except subprocess.TimeoutExpired as error:
            stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
            stderr = error.stderr.decode() if isinstance(error.stderr, bytes) else (error.stderr or "")
            rc = f"timeout after {CHILD_TIMEOUT_S} s"
        started = None
        for line in stdout.splitlines():
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "start" in record:
                started = record["start"]
            else:
                results[record["id"]] = record
                started = None
        if started is None and all(i in results for i in remaining):
            break
        if started is None:  # died before the first case (import error, ...)
            started = next(i for i in remaining if i not in results)
        if isinstance(rc, int) and rc < 0:
            how = f"killed by signal {signal.Signals(-rc).name}"
        else:
            how = f"exit status {rc}"
        results[started] = {"id": started, "crash": f"child process died during this case ({how}); "
                            f"stderr tail: {stderr[-2000:]}"}
        remaining = remaining[remaining.index(started) + 1:]
    return results


def _names(message, ops, args):
    op_ok = any(re.search(rf"fusedact::{re.escape(n)}\b", message) for n in ops)
    arg_ok = any(re.search(rf"\b{re.escape(a)}\b", message) for a in args)
    return op_ok, arg_ok


def _check_raised(c, outcome, context=""):
    assert outcome["raised"], f"{c.id}: fusedact returned {outcome['summary']} instead of raising{context}"
    # IndexError: torch's own class for a dim out of range (c10::IndexError), so the row-wise
    # ops may raise it for `dim` as torch.softmax does.
    accepted = ("RuntimeError", "ValueError", "TypeError") + (("IndexError",) if "dim" in c.args else ())
    assert any(t in outcome["mro"] for t in accepted), (
        f"{c.id}: raised {outcome['type']}, not a {'/'.join(accepted)}: {outcome['message'][:500]}"
    )
    op_ok, arg_ok = _names(outcome["message"], c.ops, c.args)
    assert op_ok, f"{c.id}: the message does not name fusedact::{'/'.join(c.ops)}: {outcome['message'][:500]!r}"
    assert arg_ok, f"{c.id}: the message does not name the argument {'/'.join(c.args)}: {outcome['message'][:500]!r}"


def check(c: Case, r: dict):
    assert "crash" not in r, f"{c.id}: {r['crash']}"
    ours = r["ours"]
    if c.expect == "raise":
        _check_raised(c, ours)
    elif c.expect == "like_torch":
        theirs = r["torch"]
        if theirs["raised"]:
            _check_raised(c, ours, f" (torch raises {theirs['type']}: {theirs['message'][:300]!r})")
        else:
            assert not ours["raised"], (
                f"{c.id}: torch accepts this (returns {theirs['summary']}) but fusedact raised "
                f"{ours['type']}: {ours['message'][:500]!r}"
            )
            assert r["mismatch"] is None, f"{c.id}: fusedact's result differs from torch's: {r['mismatch']}"
    elif c.expect == "core":
        theirs = r["torch"]
        assert theirs["raised"] and c.fragment in theirs["message"], (
            f"{c.id}: premise: torch should raise {c.fragment!r}, got {theirs}"
        )
        assert ours["raised"], (
            f"{c.id}: torch raises {theirs['type']}: {theirs['message'][:300]!r}, fusedact returned {ours['summary']}"
        )
        assert ours["type"] == theirs["type"] and c.fragment in ours["message"], (
            f"{c.id}: torch raises {theirs['type']}: {theirs['message'][:300]!r}; "
            f"fusedact raises {ours['type']}: {ours['message'][:300]!r}"
        )
    else:
        raise AssertionError(c.expect)
    if ours["raised"]:
        assert not r["input_changed_by_failed_call"], f"{c.id}: the failed call modified its input"


if __name__ == "__main__" and "--child" in sys.argv:
    child_main()
else:
    import pytest

    @pytest.fixture(scope="module")
    def results():
        return _run_children([c.id for c in CASES])

    @pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
    def test_bad_input(c, results):
        check(c, results[c.id])

    def test_enough_cases():
        assert len(CASES) >= 40, len(CASES)

    def test_child_crash_is_reported():
        """A case that kills the child fails with the signal, and the cases after it still run."""
        ids = ["gelu-approximate-x", "selftest-segfault", "elu-alpha-str"]
        results = _run_children(ids, {"FUSEDACT_BAD_INPUTS_SELFTEST": "1"})
        assert "crash" not in results["gelu-approximate-x"]
        crash = results["selftest-segfault"]["crash"]
        # Under AddressSanitizer (make test-asan) the segfault is reported by ASan, which aborts.
        assert "SIGSEGV" in crash or "AddressSanitizer: SEGV" in crash, results["selftest-segfault"]
        assert results["elu-alpha-str"]["ours"]["raised"]
