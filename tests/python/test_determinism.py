"""Determinism of the CPU kernels: bitwise identical results (compared as integers, so the
sign of zero and NaN payloads count)

- across repeated runs,
- across intra-op thread counts (torch.set_num_threads(1) vs 2, restored afterwards),
- between a prefix or a suffix and the whole: f(x[:n]) == f(x)[:n] and f(x[k:]) == f(x)[k:],
  forward and backward. The kernels run SIMD lanes over the bulk of a contiguous run and a
  scalar loop over its tail, and split the work across threads in chunks: a prefix moves
  elements from the SIMD bulk into the tail, a suffix shifts every element to another lane
  and alignment, so any disagreement between the SIMD and the scalar evaluation (or the
  chunking) shows up as a difference,
- from several Python threads at once (4 threads, many calls each) vs serial.

N = 2^17 + 3 elements: more than one grain of torch's parallel_for (32768), so the work is
split across threads, and not a multiple of any vector width. The values cover the
activations' branches (standard normal x 6) plus special values (nan, +-inf, +-0, +-1e30,
subnormals) spread over the tensor.
"""

import threading

import pytest
import torch

from conftest import GATED_CASES, ROWWISE_CASES, UNARY_CASES
from fusedact.registry import OPS

N = 2**17 + 3
PREFIXES = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 127, 1000, 32768 + 5, 65536 + 1, N - 8, N - 1]
SUFFIX_OFFSETS = [1, 2, 3, 5, 7, 17, 31]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
DTYPE_IDS = ["f32", "f64", "bf16", "f16"]
dtype_param = pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)

SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e30, -1e30, 1e-40, -1e-40, 20.0, -20.0, 88.8]


def _values(n, dtype, seed=0):
    """Standard normal x 6 with the special values at random places and, cycling, at the last
    40 places before every prefix end and the first 40 after every suffix offset, so that
    they land in the scalar tails as well as in the SIMD lanes."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen, dtype=torch.float64) * 6
    where = torch.randint(0, n, (max(1, n // 50),), generator=gen)
    near = [p - 1 - j for p in PREFIXES for j in range(40)] + [o + j for o in SUFFIX_OFFSETS for j in range(40)]
    near = torch.tensor([i for i in near if 0 <= i < n][::3] if n == N else [], dtype=torch.int64)
    where = torch.cat([where, near])
    special = torch.tensor(SPECIAL, dtype=torch.float64)
    x[where] = special[(torch.arange(where.numel()) + seed) % len(SPECIAL)]
    return x.to(dtype)


def _bits(t):
    return t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


def _assert_bitwise(a, b, what):
    assert a.shape == b.shape and a.dtype == b.dtype, (what, a.shape, b.shape, a.dtype, b.dtype)
    diff = _bits(a.contiguous()) != _bits(b.contiguous())
    if diff.any():
        idx = diff.nonzero()[:8].flatten().tolist() if a.dim() <= 1 else [tuple(i) for i in diff.nonzero()[:8].tolist()]
        nan_only = bool((a[diff].isnan() & b[diff].isnan()).all())
        largest = (a[diff].double() - b[diff].double()).abs().nan_to_num(nan=float("inf")).max().item()
        raise AssertionError(
            f"{what}: {int(diff.sum())} of {diff.numel()} elements differ bitwise "
            f"({'NaN payloads only' if nan_only else f'largest difference {largest:.3g}'}); first at {idx}: "
            + "; ".join(f"{_show(a, i)} vs {_show(b, i)}" for i in diff.reshape(-1).nonzero()[:4].flatten().tolist())
        )


def _show(t, i):
    """The i-th element (flattened) and its bit pattern."""
    flat = t.reshape(-1)
    bits = _bits(flat[i : i + 1]).item() & ((1 << (8 * t.element_size())) - 1)
    return f"{flat[i].item()!r} (bits {bits:#x})"


def _fwd_bwd(fn, inputs, g):
    """(output, gradients w.r.t. every input)."""
    leaves = [t.detach().requires_grad_() for t in inputs]
    y = fn(*leaves)
    grads = torch.autograd.grad(y, leaves, g)
    return (y.detach(),) + tuple(grads)


# --------------------------------------------------------------------------------------
# The ops as elementwise functions of 1-D tensors (for prefix/suffix slicing): unary ops,
# the gated ops' two-tensor overloads, the weighted ops with a single weight, rrelu in
# evaluation mode. Packed gated ops are checked on rows (_packed_cases).


def _elementwise_cases():
    cases = []
    for c in UNARY_CASES:
        spec, params = c.values
        cases.append(pytest.param(spec.name, (lambda s, p: lambda x: s.op(x, **p))(spec, params), 1, id=c.id))
    for c in GATED_CASES:
        spec, params = c.values
        cases.append(pytest.param(spec.name, (lambda s, p: lambda a, b: s.op.split(a, b, **p))(spec, params), 2,
                                  id=c.id + ".split"))
    for spec in OPS:
        if spec.kind == "weighted":
            cases.append(pytest.param(spec.name, (lambda s: lambda x: s.op(x, torch.tensor([0.3], dtype=x.dtype)))(spec),
                                      1, id=spec.name + "-single-weight"))
        if spec.kind == "random":
            cases.append(pytest.param(spec.name, (lambda s: lambda x: s.op(x, 0.1, 0.6, False))(spec), 1,
                                      id=spec.name + "-eval"))
    return cases


ELEMENTWISE = _elementwise_cases()


def _inputs(arity, dtype, n=N):
    return [_values(n, dtype, seed=k) for k in range(arity)], _values(n, dtype, seed=10).nan_to_num(0.0).clamp(-3, 3)


@dtype_param
@pytest.mark.parametrize("name,fn,arity", ELEMENTWISE)
def test_prefix_suffix_and_repeat_bitwise(name, fn, arity, dtype):
    xs, g = _inputs(arity, dtype)
    full = _fwd_bwd(fn, xs, g)
    again = _fwd_bwd(fn, xs, g)
    for k, (a, b) in enumerate(zip(full, again)):
        _assert_bitwise(a, b, f"{name} {dtype} repeated run, output {k}")
    for n in PREFIXES:
        part = _fwd_bwd(fn, [x[:n] for x in xs], g[:n])
        for k, (p, f) in enumerate(zip(part, full)):
            _assert_bitwise(p, f[:n], f"{name} {dtype} f(x[:{n}]) vs f(x)[:{n}], output {k} (0 = forward)")
    for off in SUFFIX_OFFSETS:
        part = _fwd_bwd(fn, [x[off:] for x in xs], g[off:])
        for k, (p, f) in enumerate(zip(part, full)):
            _assert_bitwise(p, f[off:], f"{name} {dtype} f(x[{off}:]) vs f(x)[{off}:], output {k} (0 = forward)")


def _packed_cases():
    return [pytest.param(c.values[0], c.values[1], id=c.id) for c in GATED_CASES]


@dtype_param
@pytest.mark.parametrize("spec,params", _packed_cases())
def test_packed_gated_row_prefix_bitwise(spec, params, dtype):
    """Packed gated ops, gated dim last with an odd half width (SIMD tail in every row): the
    first r rows alone give the first r rows of the whole, and a column offset of the
    halves' storage does not change the values."""
    rows, half = 131, 1001  # 131 x 2002 elements: several grains
    x = _values(rows * 2 * half, dtype).reshape(rows, 2 * half)
    g = _values(rows * half, dtype, seed=10).nan_to_num(0.0).clamp(-3, 3).reshape(rows, half)
    fn = lambda t: spec.op(t, **params, dim=-1)  # noqa: E731
    full = _fwd_bwd(fn, [x], g)
    for k, (a, b) in enumerate(zip(full, _fwd_bwd(fn, [x], g))):
        _assert_bitwise(a, b, f"{spec.name} {dtype} repeated run, output {k}")
    for r in (1, 2, 3, 17, 64, 130):
        for k, (p, f) in enumerate(zip(_fwd_bwd(fn, [x[:r]], g[:r]), full)):
            _assert_bitwise(p, f[:r], f"{spec.name} {dtype} rows [:{r}], output {k}")
    # The same values stored one column further (each row starts at another alignment).
    shifted = torch.empty(rows, 2 * half + 1, dtype=dtype)[:, 1:]
    shifted.copy_(x)
    for k, (p, f) in enumerate(zip(_fwd_bwd(fn, [shifted], g), full)):
        _assert_bitwise(p, f, f"{spec.name} {dtype} input at a shifted alignment, output {k}")


# --------------------------------------------------------------------------------------
# Row-wise ops: every output element depends on its whole row, so they are checked on rows
# (not elementwise prefixes): a subset of the rows gives those rows of the whole.


def _row_values(rows, n, dtype, seed=0):
    """[rows, n]: the special values (_values) in a few rows only (rows 1, 17, 64: a NaN or an
    inf turns its whole row to NaN, 1e30 makes it one-hot, with no rounding left to compare),
    standard normal x 6 in the others."""
    special = _values(rows * n, torch.float64, seed).reshape(rows, n)
    plain = torch.randn(rows, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 6
    keep = torch.zeros(rows, 1, dtype=torch.bool)
    keep[[r for r in (1, 17, 64) if r < rows]] = True
    return torch.where(keep, special, plain).to(dtype)


def _row_grad(rows, n, dtype):
    return _values(rows * n, dtype, seed=10).nan_to_num(0.0).clamp(-3, 3).reshape(rows, n)


def _rowwise_cases():
    return [pytest.param(c.values[0], c.values[1], id=c.id) for c in ROWWISE_CASES]


def _canonical_nan(t):
    return torch.where(t.isnan(), torch.full_like(t, float("nan")), t)


def test_torch_cast_nan_payloads_differ_between_its_paths():
    """Why test_rowwise_row_subset_bitwise canonicalizes NaN in the input gradient of a dtype=
    call: that gradient leaves fusedact in `dtype` and torch's own cast (ToCopyBackward) brings
    it back, and torch 2.11's float64 -> bfloat16 copy encodes NaN as 0xffff in its SIMD loop
    and 0x7fc0 in its scalar tail. If this starts failing, torch made them agree: drop the
    canonicalization."""
    b = torch.full((1001,), float("nan"), dtype=torch.float64).to(torch.bfloat16).view(torch.int16)
    assert b[0].item() & 0xFFFF == 0xFFFF and b[-1].item() & 0xFFFF == 0x7FC0


@dtype_param
@pytest.mark.parametrize("spec,params", _rowwise_cases())
def test_rowwise_row_subset_bitwise(spec, params, dtype):
    """Row-wise ops with an odd row length (SIMD tail in every row): repeated runs agree, the
    first r rows (dim -1) or the first r columns (dim 0, r >= 2) alone give those of the whole,
    and a copy of the input one element further in memory gives the same values.

    Columns of dim 0 with r = 1 are not compared: a single column is a contiguous row (inner
    extent 1), which the kernels reduce in another order (SIMD lanes along the row) than
    columns of an [n, k > 1] tensor (lanes across k), so they differ in the last bits, as
    torch's own softmax does (86 of 1001 float32 values for F.softmax(x[:, :1].contiguous(), 0)
    vs F.softmax(x, 0)[:, :1], x of 1001 x 131 randn * 6)."""
    dim = params["dim"]
    rows, n = 131, 1001
    x = _row_values(rows, n, dtype)
    if dim == 0:
        x = x.t().contiguous()  # [n, rows]: the rows of the op are the columns
    g = _row_grad(rows, n, params.get("dtype") or dtype)
    g = g.t().contiguous() if dim == 0 else g
    fn = lambda t: spec.op(t, **params)  # noqa: E731
    cast = params.get("dtype") not in (None, dtype)

    def run(xs, gs):
        out = _fwd_bwd(fn, xs, gs)
        # The input gradient of a cast went through torch's cast back (see the test above).
        return (out[0], _canonical_nan(out[1])) if cast else out

    full = run([x], g)
    for k, (a, b) in enumerate(zip(full, run([x], g))):
        _assert_bitwise(a, b, f"{spec.name} {dtype} repeated run, output {k}")
    for r in (1, 2, 3, 17, 64, 130):
        if dim == 0:
            if r == 1:
                continue
            part = run([x[:, :r].contiguous()], g[:, :r].contiguous())
            whole = [f[:, :r] for f in full]
        else:
            part = run([x[:r]], g[:r])
            whole = [f[:r] for f in full]
        for k, (p, f) in enumerate(zip(part, whole)):
            _assert_bitwise(p, f, f"{spec.name} {dtype} {'columns' if dim == 0 else 'rows'} [:{r}], output {k}")
    # The same values stored one element further (every row at another alignment).
    shifted = torch.empty(x.numel() + 1, dtype=dtype)[1:].view(x.shape)
    shifted.copy_(x)
    for k, (p, f) in enumerate(zip(run([shifted], g), full)):
        _assert_bitwise(p, f, f"{spec.name} {dtype} input at a shifted alignment, output {k}")


# --------------------------------------------------------------------------------------
# Thread counts


def _thread_cases():
    cases = [pytest.param(*c.values[:3], id=c.id) for c in ELEMENTWISE]
    for c in GATED_CASES:
        spec, params = c.values
        cases.append(pytest.param(spec.name + "-packed", (lambda s, p: lambda t: s.op(t, **p, dim=-1))(spec, params),
                                  "packed", id=c.id + ".packed"))
    for spec in OPS:
        if spec.kind == "weighted":  # the weight's gradient is a reduction over the elements
            cases.append(pytest.param(spec.name, (lambda s: lambda x, w: s.op(x, w))(spec), "weighted",
                                      id=spec.name + "-per-channel"))
    for c in ROWWISE_CASES:
        spec, params = c.values
        if params.get("dtype") is not None:
            continue
        # Many rows (split across threads) and one long row (a reduction a kernel might split);
        # with dim 0 the op runs on the transpose, whose columns are the rows of the input.
        if params["dim"] == 0:
            fn = (lambda s, p: lambda t: s.op(t.t(), **p).t())(spec, params)
        else:
            fn = (lambda s, p: lambda t: s.op(t, **p))(spec, params)
        for arity in ("rows", "one-row"):
            cases.append(pytest.param(spec.name, fn, arity, id=f"{c.id}.{arity}"))
    return cases


def _thread_inputs(arity, dtype):
    if arity == "packed":
        return [_values(131 * 2002, dtype).reshape(131, 2002)], _values(131 * 1001, dtype, seed=10).nan_to_num(
            0.0).clamp(-3, 3).reshape(131, 1001)
    if arity == "rows":
        return [_row_values(131, 2002, dtype)], _row_grad(131, 2002, dtype)
    if arity == "one-row":
        return [_row_values(1, N, dtype)], _row_grad(1, N, dtype)
    if arity == "weighted":
        x = torch.randn(64, 16, 129, generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(dtype)
        w = (torch.rand(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5).to(dtype)
        return [x, w], torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64).to(dtype)
    return _inputs(arity, dtype)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name,fn,arity", _thread_cases())
def test_thread_count_bitwise(name, fn, arity, dtype, restore_threads):
    xs, g = _thread_inputs(arity, dtype)
    torch.set_num_threads(1)
    one = _fwd_bwd(fn, xs, g)
    torch.set_num_threads(2)
    two = _fwd_bwd(fn, xs, g)
    for k, (a, b) in enumerate(zip(one, two)):
        _assert_bitwise(a, b, f"{name} {dtype} 1 thread vs 2 threads, output {k} (0 = forward)")


@pytest.mark.parametrize("threads", [1, 2])
def test_rrelu_training_reproducible_across_thread_counts(threads, restore_threads):
    """rrelu's training-mode slopes come from torch's generator: the same seed gives the same
    result whatever the thread count."""
    x = _values(N, torch.float32)
    torch.set_num_threads(2)
    torch.manual_seed(5)
    ref = torch.ops.fusedact.rrelu(x, 0.1, 0.6, True)
    torch.set_num_threads(threads)
    torch.manual_seed(5)
    _assert_bitwise(torch.ops.fusedact.rrelu(x, 0.1, 0.6, True), ref, f"rrelu training, {threads} threads vs 2")


def test_thread_count_restored():
    """The fixture above restores the count (checked here so that a leak shows)."""
    assert torch.get_num_threads() >= 1


# --------------------------------------------------------------------------------------
# Python threads


def _mixed_tasks():
    """(name, callable) pairs covering every shape class; each call returns tensors."""
    tasks = []
    x = _values(4099, torch.float32)
    g = _values(4099, torch.float32, seed=3).nan_to_num(0.0).clamp(-3, 3)
    for spec in OPS:
        params = dict(spec.param_sets[0])
        if spec.kind == "unary":
            tasks.append((spec.name, (lambda s, p: lambda: _fwd_bwd(lambda t: s.op(t, **p), [x], g))(spec, params)))
        elif spec.kind == "gated":
            xp = _values(4098 * 2, torch.float32, seed=4).reshape(2, 4098)
            gp = _values(2 * 2049, torch.float32, seed=5).nan_to_num(0.0).clamp(-3, 3).reshape(2, 2049)
            tasks.append((spec.name, (lambda s, p: lambda: _fwd_bwd(lambda t: s.op(t, **p), [xp], gp))(spec, params)))
        elif spec.kind == "rowwise":
            xr, gr = _row_values(3, 4099, torch.float32), _row_grad(3, 4099, torch.float32)
            tasks.append((spec.name, (lambda s, p: lambda: _fwd_bwd(lambda t: s.op(t, **p), [xr], gr))(spec, params)))
        elif spec.kind == "weighted":
            xw = _values(8 * 4 * 129, torch.float32, seed=6).nan_to_num(0.0).reshape(8, 4, 129)
            gw = _values(8 * 4 * 129, torch.float32, seed=7).nan_to_num(0.0).clamp(-3, 3).reshape(8, 4, 129)
            w = torch.tensor([0.1, -0.2, 0.3, 0.4])
            tasks.append((spec.name, (lambda s: lambda: _fwd_bwd(lambda a, b: s.op(a, b), [xw, w], gw))(spec)))
        else:
            assert spec.kind == "random", spec.kind
            tasks.append((spec.name, lambda: _fwd_bwd(lambda t: torch.ops.fusedact.rrelu(t, 0.1, 0.6, False), [x], g)))
    return tasks


def test_python_threads_match_serial():
    tasks = _mixed_tasks()
    serial = [fn() for _, fn in tasks]
    rounds = 6
    errors = []
    results = {}

    def worker(tid):
        try:
            for r in range(rounds):
                # Each thread walks the tasks in its own order.
                rot = (tid * 7 + r) % len(tasks)
                order = list(range(rot, len(tasks))) + list(range(rot))
                for i in order:
                    results[(tid, r, i)] = tasks[i][1]()
        except Exception as error:  # noqa: BLE001
            errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    assert not errors, errors
    assert len(results) == 4 * rounds * len(tasks)
    for (tid, r, i), got in results.items():
        for k, (a, b) in enumerate(zip(got, serial[i])):
            _assert_bitwise(a, b, f"{tasks[i][0]} from Python thread {tid}, round {r}, output {k}")
