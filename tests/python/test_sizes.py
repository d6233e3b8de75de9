"""Empty and huge tensors.

Empty: every shape class (unary, gated packed and split, row-wise, weighted, rrelu in
training) on 0-element tensors gives empty results and gradients of torch's shapes, double backward
included (test_forward_backward covers the unary and gated forward/backward layouts too).

Huge: more than 2^31 elements on CPU, so every 32-bit element offset overflows; bfloat16
keeps the memory to about 13 GiB. Our result on the whole tensor is compared with torch's
on slices around the 2^31 boundary and at the ends (torch itself on the whole tensor would
need another copy). Marked slow; CI runs it (`make test` runs every test). On CUDA the
same checks run in `make gpu-check`.
"""

import inspect
import os
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import fusedact
from fusedact.registry import OPS

from conftest import DEVICES, TORCH_HAS_NO_DOUBLE_BACKWARD, call_packed, ref_packed

UNARY = [s for s in OPS if s.kind == "unary"]
GATED = [s for s in OPS if s.kind == "gated"]
WEIGHTED = [s for s in OPS if s.kind == "weighted"]
ROWWISE = [s for s in OPS if s.kind == "rowwise"]


def _grads(out, inputs):
    """First and second derivatives of sum(out * g) with respect to `inputs`."""
    g = torch.randn_like(out, requires_grad=True)
    first = torch.autograd.grad(out, inputs, g, create_graph=True, allow_unused=True)
    first = [f if f is not None else torch.zeros_like(i) for f, i in zip(first, inputs)]
    second = torch.autograd.grad(sum(f.sum() for f in first), inputs + [g], allow_unused=True)
    return first, [s for s in second if s is not None]


def _check_empty(ours_fn, ref_fn, inputs, ref_double_backward=True):
    ours_in = [t.clone().requires_grad_() for t in inputs]
    ref_in = [t.clone().requires_grad_() for t in inputs]
    out, ref = ours_fn(*ours_in), ref_fn(*ref_in)
    assert out.shape == ref.shape and out.dtype == ref.dtype and out.numel() == 0
    first, second = _grads(out, ours_in)
    if ref_double_backward:
        ref_first, ref_second = _grads(ref, ref_in)
    else:  # torch has no double backward here: compare the first derivatives only
        ref_first = list(torch.autograd.grad(ref, ref_in, torch.randn_like(ref)))
        ref_second = [torch.empty_like(t) for t in ours_in + [out]]
    assert len(second) == len(ref_second)
    for a, b in zip(first + second, ref_first + ref_second):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0,), (3, 0, 5), (0, 4)])
@pytest.mark.parametrize("spec", UNARY, ids=lambda s: s.name)
def test_unary_empty(spec, shape, device):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    params = spec.param_sets[0]
    _check_empty(lambda t: spec.op(t, **params), lambda t: spec.reference(t, **params), [x],
                 ref_double_backward=spec.name not in TORCH_HAS_NO_DOUBLE_BACKWARD)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape,dim", [((0, 6), -1), ((3, 0), -1), ((4, 0, 5), 0), ((0,), 0)])
@pytest.mark.parametrize("spec", GATED, ids=lambda s: s.name)
def test_gated_empty(spec, shape, dim, device):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    _check_empty(lambda t: call_packed(spec, t, {}, dim), lambda t: ref_packed(spec, t, {}, dim), [x])
    half = list(shape)
    half[dim] //= 2
    gate, up = torch.randn(half, dtype=torch.float64, device=device), torch.randn(half, dtype=torch.float64, device=device)
    _check_empty(lambda a, b: spec.op.split(a, b), lambda a, b: spec.reference(a, b), [gate, up])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(0, 3), (2, 3, 0)])
@pytest.mark.parametrize("spec", WEIGHTED, ids=lambda s: s.name)
def test_weighted_empty(spec, shape, device):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    w = torch.rand(3, dtype=torch.float64, device=device)
    if spec.name == "prelu":
        reference = spec.reference
    else:  # the registry's reference broadcasts the weight over the last dim; ours is dim 1
        reference = lambda t, v: spec.reference(t, v.view(-1, *[1] * (t.dim() - 2)))  # noqa: E731
    _check_empty(lambda t, v: spec.op(t, v), reference, [x, w])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape,dim", [((0,), 0), ((0, 4), -1), ((3, 0, 5), 1), ((3, 0, 5), -1), ((3, 0, 5), 0)])
@pytest.mark.parametrize("spec", ROWWISE, ids=lambda s: s.name)
def test_rowwise_empty(spec, shape, dim, device):
    """Empty rows (size 0 along dim) and no rows (size 0 elsewhere)."""
    x = torch.randn(shape, dtype=torch.float64, device=device)
    _check_empty(lambda t: spec.op(t, dim), lambda t: spec.reference(t, dim=dim), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_rrelu_training_empty(device):
    x = torch.randn(2, 0, 3, dtype=torch.float64, device=device, requires_grad=True)
    y = fusedact.ops.rrelu(x, 0.1, 0.3, True)
    assert y.shape == x.shape
    (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    assert gx.shape == x.shape


# ---------------------------------------------------------------------------------------
# Outputs of several MiB: the CPU kernels map a fresh output's pages 1 MiB at a time before
# computing them (runs.h prefault_pages). Results must still match torch, across blocks, for
# strided outputs and for an in-place op (output = input, already mapped).


def _gelu_swiglu_softmax_match_torch(x, g, packed):
    """gelu forward and backward (output gradient g), swiglu on packed and softmax, against
    torch: what both tests below run (the child process gets this function's source)."""
    xg = x.detach().requires_grad_()
    y = torch.ops.fusedact.gelu(xg, "none")
    (gx,) = torch.autograd.grad(y, xg, g)
    assert_close(y, F.gelu(x))
    xr = x.detach().requires_grad_()
    (gx_ref,) = torch.autograd.grad(F.gelu(xr), xr, g)
    assert_close(gx, gx_ref)
    gate, up = packed.chunk(2, -1)  # gated: strided halves in
    assert_close(torch.ops.fusedact.swiglu(packed, -1), F.silu(gate) * up)
    assert_close(torch.ops.fusedact.softmax(x, -1, None), torch.softmax(x, -1))


def test_outputs_across_prefault_blocks_match_torch():
    torch.manual_seed(0)
    x = torch.randn(1000, 1037) * 3  # 4.0 MiB of float32, rows not page-aligned
    g = torch.randn_like(x)
    packed = torch.randn(600, 2 * 1037)
    _gelu_swiglu_softmax_match_torch(x, g, packed)

    packed.requires_grad_()
    out = torch.ops.fusedact.swiglu(packed, -1)
    go = torch.randn_like(out)
    (gp,) = torch.autograd.grad(out, packed, go)  # both halves written into one packed tensor
    ref_packed_input = packed.detach().requires_grad_()
    a, b = ref_packed_input.chunk(2, -1)
    (gp_ref,) = torch.autograd.grad(F.silu(a) * b, ref_packed_input, go)
    assert_close(gp, gp_ref)

    y = torch.softmax(x, -1)
    assert_close(torch.ops.fusedact.softmax_backward(g, y, -1),
                 torch._softmax_backward_data(g, y, -1, x.dtype))

    inplace = x.clone()
    torch.ops.fusedact.hardtanh_(inplace, -1.0, 1.0)
    assert_close(inplace, F.hardtanh(x, -1.0, 1.0), rtol=0, atol=0)
    for columns in (700, 300):  # strided in-place rows: dense enough to prefault, and not
        inplace = x.clone()
        torch.ops.fusedact.hardtanh_(inplace[:, :columns], -1.0, 1.0)
        expected = x.clone()
        expected[:, :columns] = F.hardtanh(x[:, :columns], -1.0, 1.0)
        assert_close(inplace, expected, rtol=0, atol=0)


_FRESH_OUTPUTS_SCRIPT = f"""
import torch
import torch.nn.functional as F
from torch.testing import assert_close
import fusedact

{inspect.getsource(_gelu_swiglu_softmax_match_torch)}
torch.manual_seed(0)
x = torch.randn(2304, 4096) * 3  # 36 MiB outputs: past glibc's largest mmap threshold
_gelu_swiglu_softmax_match_torch(x, torch.randn_like(x), torch.randn(2304, 2 * 4096))
print("ok")
"""


def test_fresh_outputs_prefaulted_match_torch():
    # The outputs above start NaN-filled (conftest), so their pages are mapped before the
    # kernels run and prefault_pages leaves them alone. A child process without the fill
    # gets fresh 36 MiB mappings, which it populates (seen with strace -e madvise).
    env = {k: v for k, v in os.environ.items() if k != "FUSEDACT_FILL_OUTPUTS_WITH_NAN"}
    python_dir = str(pathlib.Path(fusedact.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [python_dir, env.get("PYTHONPATH")] if p)
    result = subprocess.run([sys.executable, "-c", _FRESH_OUTPUTS_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


# ---------------------------------------------------------------------------------------
# More than 2^31 elements (CPU).

HUGE = 2**31 + 3  # output elements: every offset past 2^31 - 1 overflows 32 bits


def _slices(n):
    """Windows at the start, around 2^31 and at the end, as (start, stop)."""
    return [(0, 4096), (2**31 - 4096, 2**31 + 3), (n - 4096, n)]


@pytest.mark.slow
def test_unary_huge_cpu():
    x = torch.empty(HUGE, dtype=torch.bfloat16).uniform_(-6, 6)
    y = fusedact.ops.gelu(x)
    for start, stop in _slices(HUGE):
        assert_close(y[start:stop], F.gelu(x[start:stop]))
    del y
    g = fusedact.ops.silu_backward(x, x)  # grad_output = x: a second full-size read
    for start, stop in _slices(HUGE):
        window = x[start:stop].float().requires_grad_()
        (ref,) = torch.autograd.grad(F.silu(window), window, window.detach())
        assert_close(g[start:stop], ref.to(torch.bfloat16))


@pytest.mark.slow
def test_gated_huge_gated_dim_cpu():
    """swiglu over dim 0 of a (2, HUGE) tensor: `up` starts HUGE elements in, past 2^31."""
    x = torch.empty(2, HUGE, dtype=torch.bfloat16).uniform_(-6, 6)
    y = fusedact.ops.swiglu(x, 0)
    assert y.shape == (1, HUGE)
    for start, stop in _slices(HUGE):
        gate, up = x[0, start:stop].float(), x[1, start:stop].float()
        assert_close(y[0, start:stop], (F.silu(gate) * up).to(torch.bfloat16))
