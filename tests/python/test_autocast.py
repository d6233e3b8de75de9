"""torch.autocast: every op gives the output dtype (and values) of the torch built-in of the
same op under the same autocast region: CPU bfloat16/float16 and CUDA float16/bfloat16.

torch's policies that touch activations: prelu runs in the autocast dtype (CPU and CUDA),
softplus in float32 (CUDA), softmax, log_softmax and softmin in float32 (CUDA, when no dtype=
is given; fp32_set_opt_dtype); everything else runs in its input's dtype. learnable_swish,
which has no torch built-in, follows prelu (its weight is a parameter like prelu's), so a
float32 beta meets a lower-precision activation without a dtype error.
"""

import pytest
import torch
from torch.testing import assert_close

from conftest import DEVICES, HAS_CUDA, NO_CUDA_REASON, OPS, randn, ref_packed

AUTOCAST_DTYPES = [torch.bfloat16, torch.float16]
INPUT_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
CASES = [pytest.param(s, id=s.name) for s in OPS if s.kind != "random"]


def _call(spec, x, weight):
    """(fusedact output, torch built-in output or None where torch has none) for spec on x."""
    params = spec.params
    if spec.kind in ("unary", "rowwise"):  # rowwise: dim=-1, dtype=None
        return spec.op(x, **params), spec.reference(x, **params)
    if spec.kind == "gated":
        return spec.op(x, **params, dim=-1), ref_packed(spec, x, params, -1)
    if spec.name == "prelu":
        return spec.op(x, weight), torch.nn.functional.prelu(x, weight)
    # learnable_swish: no built-in; torch's prelu policy (both to the autocast dtype).
    return spec.op(x, weight), None


@pytest.mark.parametrize("input_dtype", INPUT_DTYPES, ids=["f32", "bf16", "f16"])
@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES, ids=["bf16", "f16"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", CASES)
def test_autocast_output_dtype_and_values_match_torch(spec, device, autocast_dtype, input_dtype):
    x = randn((4, 6), input_dtype, device)
    weight = randn((6,), torch.float32, device).abs()  # parameters stay float32 under autocast
    with torch.autocast(device, dtype=autocast_dtype):
        ours, theirs = _call(spec, x, weight)
    expected_dtype = autocast_dtype if theirs is None else theirs.dtype
    assert ours.dtype == expected_dtype, f"fusedact {ours.dtype}, torch {expected_dtype}"
    if theirs is None:  # learnable_swish: its definition evaluated in the autocast dtype
        theirs = spec.reference(x.to(autocast_dtype), weight.to(autocast_dtype))
    half = ours.dtype in (torch.float16, torch.bfloat16)
    tol = dict(rtol=2e-2, atol=2e-2) if half else dict(rtol=1e-5, atol=1e-5)
    assert_close(ours.float(), theirs.float(), **tol, equal_nan=True)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", CASES)
def test_autocast_backward_gives_grads_in_the_leaves_dtypes(spec, device):
    x = randn((4, 6), torch.float32, device).requires_grad_()
    weight = randn((6,), torch.float32, device).abs().requires_grad_()
    with torch.autocast(device, dtype=torch.bfloat16):
        ours, _ = _call(spec, x, weight)
    ours.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32
    if spec.kind == "weighted":
        assert weight.grad is not None and weight.grad.dtype == torch.float32


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA_REASON)
def test_cuda_softplus_runs_in_float32_as_torch():
    x = randn((8,), torch.float16, "cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        assert torch.ops.fusedact.softplus(x).dtype == torch.nn.functional.softplus(x).dtype == torch.float32


ROWWISE = [pytest.param(s, id=s.name) for s in OPS if s.kind == "rowwise"]


@pytest.mark.parametrize("out_dtype", [torch.float64, torch.float32, torch.bfloat16], ids=["f64", "f32", "bf16"])
@pytest.mark.parametrize("autocast_dtype", AUTOCAST_DTYPES, ids=["bf16", "f16"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("spec", ROWWISE)
def test_autocast_rowwise_dtype_argument_wins_as_torch(spec, device, autocast_dtype, out_dtype):
    """With dtype= the row-wise ops run in that dtype under autocast, as torch's (CUDA's
    fp32_set_opt_dtype policy only acts when no dtype= is given)."""
    x = randn((4, 6), torch.float16, device)
    with torch.autocast(device, dtype=autocast_dtype):
        ours = spec.op(x, -1, out_dtype)
        theirs = spec.reference(x, dim=-1, dtype=out_dtype)
    assert ours.dtype == theirs.dtype == out_dtype
    if out_dtype in (torch.float16, torch.bfloat16):
        # fusedact computes half types in float32 and rounds once; torch's half log_softmax
        # rounds x - max first: the reference is torch in float32 on the cast values, rounded.
        theirs = spec.reference(x.to(out_dtype).float(), dim=-1).to(out_dtype)
    assert_close(ours, theirs, equal_nan=True)


@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA_REASON)
@pytest.mark.parametrize("spec", ROWWISE)
def test_cuda_rowwise_runs_in_float32_as_torch(spec):
    x = randn((8, 5), torch.float16, "cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        assert spec.op(x, -1).dtype == spec.reference(x, dim=-1).dtype == torch.float32
