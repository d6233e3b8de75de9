"""The constants of near_gelu_slope_zero (csrc/cpu/vec_float_math.h): the zero x0 of gelu's
derivative g(x) = Phi(x) + x*phi(x), split into two floats, and g's Taylor coefficients at x0,
at 50 digits (mpmath), rounded to float. Run: python tools/gelu_slope_series.py"""
import mpmath
import numpy as np

mpmath.mp.dps = 50
g = lambda x: mpmath.ncdf(x) + x * mpmath.npdf(x)  # noqa: E731
x0 = mpmath.findroot(g, -0.75)
hi = np.float32(float(x0))
lo = np.float32(float(x0 - mpmath.mpf(float(hi))))
print(f"x0 = {mpmath.nstr(x0, 20)} = {hi!r} + {lo!r}")
coefficients = mpmath.taylor(g, x0, 9)[1:]
print("a9 ... a1:", ", ".join(f"{np.float32(float(c)):.8e}f" for c in reversed(coefficients)))
