"""GELU (approximate='none') and its derivative in float32 against float64, in ulps.

torch's float64 gelu cancels in the left tail (1 + erf), so the reference is
x * erfc(-x/sqrt2)/2 and erfc(-x/sqrt2)/2 + x*phi(x) in float64 (~1e-16 relative). The
AVX-512 kernels take Phi(-|x|) and gelu's slope from the piecewise tables of
csrc/cpu/normal_cdf_tables.h for x >= -6.99 and the erfc/exp formulas below; the AVX2
kernels take the formulas everywhere; the scalar kernels evaluate Phi in double, round it to
float32 and multiply. Each bound is that path's maximum on these points, rounded up
(2026-11-23, gelu / gelu'): tables 2.55 / 1.99 ulp; formulas 7.29 / 8.33 on [-6.99, 10]
(AVX2) and 13.8 / 10.8 on [-14, -6.99]; scalar 1.44 / 0.50, and 7.05 / 0.50 on [-14, -6.99].
The tail's larger gelu errors are Phi's: below x = -13.0 Phi(x) is subnormal in float32 and
keeps fewer bits than gelu(x) = x*Phi(x) has.
"""

import pytest
import torch

import fusedact

TABLE_START = -6.99  # the AVX-512 kernels take the tables from here up
BOUNDS = {  # (kernels, range at or past TABLE_START) -> max ulps
    ("avx512", True): 3.0,
    ("avx512", False): 16.0,
    ("avx2", True): 9.0,
    ("avx2", False): 16.0,
    ("default", True): 1.5,
    ("default", False): 8.0,
}


def _points(low, high):
    grid = torch.linspace(low, high, 1 << 21, dtype=torch.float32)
    # float32 neighbors of gelu's zero slope at -0.75179152..., where the slope cancels
    zero = torch.tensor(-0.7517915, dtype=torch.float32)
    steps = torch.arange(-4096, 4097, dtype=torch.float32) * torch.finfo(torch.float32).eps / 2
    return torch.cat([grid, zero + steps * zero.abs()])


def _ulps(got, exact):
    normal = exact.abs() >= torch.finfo(torch.float32).tiny
    scale = torch.pow(2.0, torch.floor(torch.log2(exact[normal].abs())) - 23)
    return ((got.double()[normal] - exact[normal]).abs() / scale).max().item()


def _gelu_and_slope(x):
    t = x.double()
    cdf = 0.5 * torch.special.erfc(-t / 2**0.5)
    pdf = torch.exp(-0.5 * t * t) / (2 * torch.pi) ** 0.5
    got = torch.ops.fusedact.gelu(x, "none")
    got_slope = torch.ops.fusedact.gelu_backward(torch.ones_like(x), x, "none")
    return _ulps(got, t * cdf), _ulps(got_slope, cdf + t * pdf)


@pytest.mark.parametrize("low,high", [(-6.99, 0.0), (0.0, 10.0), (-14.0, -6.99)])
def test_gelu_float32_ulps(low, high):
    bound = BOUNDS[(fusedact.cpu_kernels(), low >= TABLE_START)]
    x = _points(low, high)
    x = x[(x >= low) & (x <= high)]
    gelu_ulps, slope_ulps = _gelu_and_slope(x)
    where = f"on [{low}, {high}] ({fusedact.cpu_kernels()})"
    assert gelu_ulps <= bound, f"gelu: {gelu_ulps:.2f} ulp {where}"
    assert slope_ulps <= bound, f"gelu': {slope_ulps:.2f} ulp {where}"
