"""Large CPU outputs are advised for transparent huge pages (csrc/common.cpp, new_output).

From 32 MiB on, an output's 2 MiB-aligned interior is madvise(MADV_HUGEPAGE)d before its
kernel writes it; smaller outputs, and every output under FUSEDACT_HUGE_PAGES=0, are left
alone. The kernel reports the advice as the flag `hg` of the mapping in /proc/self/smaps.
The results themselves are compared with torch (the page size must not change a value).
"""

import os
import pathlib
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import fusedact  # noqa: F401  (registers torch.ops.fusedact)

HUGE_PAGE = 2 << 20
THP_SETTING = pathlib.Path("/sys/kernel/mm/transparent_hugepage/enabled")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not THP_SETTING.exists(),
    reason="transparent huge pages are a Linux feature and this kernel has none")


def _flags_at(address):
    """The VmFlags of the mapping that holds `address`, from /proc/self/smaps."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            first = line.split(maxsplit=1)[0]
            if "-" in first and not first.endswith(":"):
                low, high = (int(v, 16) for v in first.split("-"))
                inside = low <= address < high
            elif inside and line.startswith("VmFlags:"):
                return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


def _interior(t):
    """An address of `t`'s storage on a whole 2 MiB page, well inside it."""
    begin = t.untyped_storage().data_ptr()
    first = (begin + HUGE_PAGE - 1) // HUGE_PAGE * HUGE_PAGE
    assert first + HUGE_PAGE <= begin + t.untyped_storage().nbytes()
    return first + HUGE_PAGE // 2


def _large_outputs():
    """Outputs of 64 MiB of each shape class, with torch's value of each."""
    x = torch.randn(4096, 4096, requires_grad=True)
    packed = torch.randn(4096, 8192)
    y = torch.ops.fusedact.gelu(x)
    (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
    xr = x.detach().requires_grad_()
    (ref_dx,) = torch.autograd.grad(F.gelu(xr), xr, torch.ones_like(y))
    a, b = packed.chunk(2, dim=-1)
    return {
        "gelu forward": (y, F.gelu(x.detach())),
        "gelu backward": (dx, ref_dx),
        "swiglu forward": (torch.ops.fusedact.swiglu(packed, -1), F.silu(a) * b),
        "softmax forward": (torch.ops.fusedact.softmax(x.detach(), -1, None),
                            torch.softmax(x.detach(), -1)),
    }


def test_large_outputs_are_advised_and_correct():
    if "FUSEDACT_HUGE_PAGES" in os.environ:
        pytest.skip("FUSEDACT_HUGE_PAGES is set in this process")
    for name, (ours, ref) in _large_outputs().items():
        assert "hg" in _flags_at(_interior(ours)), f"{name}: its 64 MiB output was not advised"
        assert_close(ours, ref, msg=lambda m: f"{name}: {m}")


def test_small_outputs_are_not_advised():
    if "FUSEDACT_HUGE_PAGES" in os.environ:
        pytest.skip("FUSEDACT_HUGE_PAGES is set in this process")
    # 16 MiB, under the 32 MiB floor: glibc may serve it from a shared heap mapping, which
    # the advice would split.
    y = torch.ops.fusedact.relu(torch.randn(2048, 2048))
    assert "hg" not in _flags_at(_interior(y))


_CHILD = """
import sys, torch
sys.path.insert(0, sys.argv[1])
import test_huge_pages as t
for name, (ours, ref) in t._large_outputs().items():
    assert "hg" not in t._flags_at(t._interior(ours)), name + " was advised"
    torch.testing.assert_close(ours, ref)
print("ok")
"""


def test_switched_off_by_environment():
    env = dict(os.environ, FUSEDACT_HUGE_PAGES="0")
    python_dir = str(pathlib.Path(fusedact.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([python_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    tests_dir = str(pathlib.Path(__file__).resolve().parent)
    proc = subprocess.run([sys.executable, "-c", _CHILD, tests_dir], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-4000:]
