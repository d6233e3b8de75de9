"""The coefficients of erfc_scaled_fit (csrc/cpu/vec_float_math.h): a degree-8 polynomial in
t = 1/(1 + z/2) for erfc(z)*exp(z^2)/t on t in [0.16, 1] (z <= 10.5; past it exp(-z^2) is 0
in float32), fitted for relative error: weighted least squares at Chebyshev nodes, reweighted
toward equal ripple (Lawson), then rounded to float32 from the highest coefficient down, each
rounding followed by a refit of the lower ones. Reference values at 30 digits (mpmath).
Prints the relative error of the exact fit and of a float32 Horner evaluation (two roundings
a step; the kernel's fma rounds once). Run: .venv/bin/python tools/erfc_scaled_fit.py"""
import mpmath
import numpy as np

mpmath.mp.dps = 30
LOW, DEGREE, NODES = 0.16, 8, 1200


def scaled_erfc_over_t(t):
    z = 2 / mpmath.mpf(t) - 2
    return mpmath.erfc(z) * mpmath.exp(z * z) / t


nodes = (LOW + 1) / 2 + (1 - LOW) / 2 * np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)
values = np.array([float(scaled_erfc_over_t(t)) for t in nodes])


def relative_fit(target, degree):
    weights = 1 / values
    for _ in range(30):
        c = np.polynomial.polynomial.polyfit(nodes, target, degree, w=weights)
        error = np.abs(np.polynomial.polynomial.polyval(nodes, c) - target) / values
        weights = weights * (error / error.max() + 1e-3) ** 0.5
    return c


exact = relative_fit(values, DEGREE)
rounded = []  # highest degree first
for degree in range(DEGREE, -1, -1):
    target = values - sum(c * nodes ** (DEGREE - i) for i, c in enumerate(rounded))
    rounded.append(float(np.float32(relative_fit(target, degree)[degree])))

check = np.linspace(LOW, 1, 3001)
reference = np.array([float(scaled_erfc_over_t(t)) for t in check])
horner = np.float32(rounded[0])
for c in rounded[1:]:
    horner = (horner * check.astype(np.float32) + np.float32(c)).astype(np.float32)
exact_error = np.abs(np.polynomial.polynomial.polyval(check, exact) / reference - 1).max()
float_error = np.abs(horner.astype(np.float64) / reference - 1).max()
print(f"max relative error: fit {exact_error:.2e}, float32 Horner {float_error:.2e}")
print("a8 ... a0:", ", ".join(f"{c:.8e}f" for c in rounded))
