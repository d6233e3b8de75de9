"""hardsigmoid and hardswish divide by 6, and hardswish's derivative divides x by 3, as torch
does. fusedact's float SIMD kernels multiply by the reciprocal and correct the product by one
fma (csrc/cpu/vec_float_math.h, divide) instead of dividing. Here every float32 of a binade
goes through them and must match torch's result bit for bit; multiplying an input by a power
of two scales the exact quotient and its rounding alike, so one binade stands for every
binade whose quotient is a normal number. (hardsigmoid's derivative is torch's dy * (1/6), a
product, checked the same way.)"""

import pytest
import torch
import torch.nn.functional as F

import fusedact  # noqa: F401


def _binade(low):
    """Every float32 in [low, 2 * low), low a power of two, in order."""
    start = torch.tensor([low], dtype=torch.float32).view(torch.int32).item()
    return torch.arange(start, start + (1 << 23), dtype=torch.int32).view(torch.float32)


def _assert_bitwise(ours, theirs, what):
    mismatched = (ours.view(torch.int32) != theirs.view(torch.int32)).nonzero().flatten()
    assert mismatched.numel() == 0, (
        f"{what}: {mismatched.numel()} results differ from torch's bitwise, first at "
        f"{mismatched[:3].tolist()}: {ours[mismatched[:3]].tolist()} vs {theirs[mismatched[:3]].tolist()}")


@pytest.mark.parametrize("low", [1.0, 4.0])
def test_hardsigmoid_quotients(low):
    # x + 3 is exactly each float h of the binade (h - 3 is exact there), so the kernel
    # divides every h by 6.
    h = _binade(low)
    h = h[h <= 6]
    x = h - 3
    assert torch.equal(x + 3, h)
    _assert_bitwise(torch.ops.fusedact.hardsigmoid(x), F.hardsigmoid(x), "hardsigmoid")


def test_hardswish_quotients():
    x = torch.cat([_binade(1.0), -_binade(1.0), _binade(0.25)])  # x * (x + 3): any products
    _assert_bitwise(torch.ops.fusedact.hardswish(x), F.hardswish(x), "hardswish")


def test_hardswish_derivative_quotients():
    x = torch.cat([_binade(1.0), -_binade(1.0)])  # inside (-3, 3): dy * (x/3 + 1/2)
    dy = torch.ones_like(x)
    ours = torch.ops.fusedact.hardswish_backward(dy, x)
    _assert_bitwise(ours, torch.ops.aten.hardswish_backward(dy, x), "hardswish backward")


def test_hardsigmoid_derivative_quotients():
    dy = _binade(1.0)
    x = torch.zeros_like(dy)  # inside (-3, 3): dy/6
    ours = torch.ops.fusedact.hardsigmoid_backward(dy, x)
    _assert_bitwise(ours, torch.ops.aten.hardsigmoid_backward(dy, x), "hardsigmoid backward")
