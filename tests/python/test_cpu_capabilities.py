"""The CPU kernels of every instruction set this machine can run, against each other.

fusedact picks its CPU kernels at run time from torch's CPU capability: AVX-512, AVX2, or the
scalar functors (DEFAULT). This process runs the widest; child processes run each narrower
one, lowered with ATEN_CPU_CAPABILITY (torch's own switch, which fusedact follows) and with
FUSEDACT_CPU_CAPABILITY (which lowers fusedact alone). Every elementwise op (unary, gated,
weighted; each parameter set of the registry) in float32, float64, bfloat16 and float16,
forward and backward, on random values, special values (0, -0, +-inf, NaN, subnormals, the
largest floats) and lengths that leave partial vectors, must agree with this process's
results within torch.testing.assert_close's defaults for the dtype (equal_nan=True). The
SIMD kernels share one source (vectorized_impl.h) compiled per instruction set; the scalar
kernels evaluate the same functors in float or double. Row-wise ops: test_softmax.py.
"""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.testing import assert_close

import fusedact
from fusedact import registry

# Narrower capabilities, widest first, as torch names them (get_cpu_capability) and as the
# ATEN_CPU_CAPABILITY / FUSEDACT_CPU_CAPABILITY variables spell them.
ORDER = ["AVX512", "AVX2", "DEFAULT"]
ENV_NAME = {"AVX512": "avx512", "AVX2": "avx2", "DEFAULT": "default"}
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]

_CHILD = textwrap.dedent("""
    import sys
    import torch
    import fusedact
    sys.path.insert(0, sys.argv[3])
    import test_cpu_capabilities as t
    torch.save({"torch": torch.backends.cpu.get_cpu_capability(), "fusedact": fusedact.cpu_kernels(),
                "results": t.evaluate(torch.load(sys.argv[1]))}, sys.argv[2])
""")


def _special_values(dtype):
    info = torch.finfo(dtype)
    values = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, -0.5, 20.0, -20.0, 100.0, -100.0,
              float("inf"), float("-inf"), float("nan"), info.tiny, -info.tiny, info.tiny / 4,
              info.max, -info.max, info.eps, 1e-30, -1e-30]
    return torch.tensor(values, dtype=torch.float64).to(dtype)


def _cases():
    generator = torch.Generator().manual_seed(0)
    cases = []
    for spec in registry.OPS:
        if spec.kind not in ("unary", "gated", "weighted"):
            continue
        for params in spec.param_sets:
            for dtype in DTYPES:
                specials = _special_values(dtype)
                # 83 random values then the special ones: lengths 107 and 2*107 are no multiple
                # of any vector width, so every kernel runs its partial tail vector
                random = (torch.randn(83, generator=generator, dtype=torch.float64) * 4).to(dtype)
                row = torch.cat([random, specials])
                if spec.kind == "gated":
                    x = torch.stack([row, row.flip(0)]).reshape(1, -1)  # both halves see every value
                    x = torch.cat([x, (torch.randn(2, x.shape[1], generator=generator) * 4).to(dtype)])
                elif spec.kind == "weighted":
                    x = torch.stack([row, row.flip(0), -row])[None]  # (1, 3, 107): 3 channels
                else:
                    x = torch.stack([row, (torch.randn(row.numel(), generator=generator) * 4).to(dtype)])
                out_shape = (x.shape[0], x.shape[1] // 2) if spec.kind == "gated" else x.shape
                grad = torch.randn(out_shape, generator=generator).to(dtype)
                weight = torch.tensor([0.25, -1.5, 2.0], dtype=dtype) if spec.kind == "weighted" else None
                cases.append((spec.name, params, x, grad, weight))
    return cases


def evaluate(cases):
    """Forward output and the input (and weight) gradients of every case, in this process."""
    results = []
    for name, params, x, grad, weight in cases:
        spec = registry.get(name)
        leaf = x.clone().requires_grad_()
        inputs = [leaf]
        if weight is not None:
            w = weight.clone().requires_grad_()
            inputs.append(w)
            y = spec.op(leaf, w, **params)
        else:
            y = registry.call(spec, leaf, **params)
        grads = torch.autograd.grad(y, inputs, grad, allow_unused=True)
        results.append((y.detach(), list(grads)))
    return results


def _narrower_capabilities():
    here = fusedact.cpu_kernels().upper()
    return ORDER[ORDER.index(here) + 1:]


def test_cpu_kernels_follow_torch():
    """Without FUSEDACT_CPU_CAPABILITY, fusedact runs torch's capability (AVX2 or AVX-512;
    anything else, e.g. torch's ZVECTOR or SVE, gets the scalar kernels)."""
    if "FUSEDACT_CPU_CAPABILITY" in os.environ:
        pytest.skip("FUSEDACT_CPU_CAPABILITY is set in this process")
    torch_capability = torch.backends.cpu.get_cpu_capability()
    expected = ENV_NAME[torch_capability] if torch_capability in ("AVX512", "AVX2") else "default"
    assert fusedact.cpu_kernels() == expected


@pytest.mark.parametrize("variable", ["ATEN_CPU_CAPABILITY", "FUSEDACT_CPU_CAPABILITY"])
@pytest.mark.parametrize("capability", ["AVX2", "DEFAULT"])
def test_narrower_kernels_match(capability, variable, tmp_path):
    if capability not in _narrower_capabilities():
        pytest.skip(f"this machine runs {torch.backends.cpu.get_cpu_capability()}: "
                    f"{capability} is not narrower (nothing to compare it with)")
    cases = _cases()
    inputs, outputs = tmp_path / "inputs.pt", tmp_path / "outputs.pt"
    torch.save(cases, inputs)
    env = dict(os.environ, **{variable: ENV_NAME[capability]})
    python_dir = str(pathlib.Path(fusedact.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([python_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    tests_dir = str(pathlib.Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(inputs), str(outputs), tests_dir], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    child = torch.load(outputs)
    assert child["fusedact"] == ENV_NAME[capability], child["fusedact"]
    # ATEN_CPU_CAPABILITY lowers torch too; FUSEDACT_CPU_CAPABILITY leaves torch's alone
    expected_torch = capability if variable == "ATEN_CPU_CAPABILITY" else torch.backends.cpu.get_cpu_capability()
    assert child["torch"] == expected_torch, child["torch"]
    here = evaluate(cases)
    assert len(here) == len(child["results"])
    for (name, params, x, _, _), (y, grads), (y_child, grads_child) in zip(cases, here, child["results"]):
        where = f"{name} {params} {x.dtype}, {torch.backends.cpu.get_cpu_capability()} vs {capability}"
        assert_close(y_child, y, equal_nan=True, msg=lambda m: f"{where} forward: {m}")
        for i, (g, g_child) in enumerate(zip(grads, grads_child)):
            assert_close(g_child, g, equal_nan=True, msg=lambda m: f"{where} gradient {i}: {m}")
