"""Coefficients of p in tanh(x) = x + x^3 p(x^2) for |x| < 0.625 (csrc/cpu/vec_float_math.h,
tanh): least squares in z = x^2 on 500 Chebyshev nodes of [0, 0.625^2] against mpmath,
weighted toward tanh's relative error. Prints the model's relative error in tanh and the
max/mean ulp of a float32 evaluation (Horner by fma, then x + x*(z*p) by fma) on 400,001
points. Run: .venv/bin/python tools/tanh_series_fit.py"""
import mpmath
import numpy as np

mpmath.mp.dps = 30
EDGE, NODES, DEGREE = 0.625, 500, 5


def target(z):  # (tanh(x)/x - 1)/z, z = x^2
    x = mpmath.sqrt(z)
    return (mpmath.tanh(x) / x - 1) / z


zs = [EDGE**2 / 2 * (1 - mpmath.cos(mpmath.pi * (k + 0.5) / NODES)) for k in range(NODES)]
values = np.array([float(target(z)) for z in zs])
z64 = np.array([float(z) for z in zs])
coeffs = np.polyfit(z64, values, DEGREE, w=z64 / np.abs(values) + 1e-3).astype(np.float32)
model = max(abs(float(np.polyval(coeffs.astype(np.float64), float(z))) - float(target(z))) * float(z)
            for z in zs)

x = np.linspace(1e-4, EDGE, 400001).astype(np.float32)
z = (x * x).astype(np.float32)
p = coeffs[0]
for c in coeffs[1:]:
    p = (p.astype(np.float64) * z + c).astype(np.float32)  # fma: one rounding
zp = (z * p).astype(np.float32)
got = (x.astype(np.float64) * zp + x).astype(np.float32)
exact = np.tanh(x.astype(np.float64))
ulps = np.abs(got - exact) / np.spacing(np.abs(exact).astype(np.float32))
print("coefficients, highest degree first:", [float(c) for c in coeffs])
print(f"model relative error {model:.2e}; float32: max {ulps.max():.3f} ulp, mean {ulps.mean():.3f}")
