"""The constants of the Taylor series that vec_float_math.h uses near the zero of gelu's
derivative, for both forms: the exact g(x) = Phi(x) + x*phi(x) (cdf_plus_x_pdf) and the tanh
form's d/dx [x * sigmoid(2u)], u = sqrt(2/pi)*(x + 0.044715 x^3) (tanh_gelu_slope). For each:
the zero x0 split into two floats, and the coefficients a9 ... a1 at x0, at 50 digits
(mpmath), rounded to float. Run: python tools/gelu_slope_series.py"""
import mpmath
import numpy as np

mpmath.mp.dps = 50
k, c = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")
FORMS = {
    "exact (cdf_plus_x_pdf)": lambda x: x * mpmath.ncdf(x),
    "tanh (tanh_gelu_slope)": lambda x: x / (1 + mpmath.exp(-2 * k * (x + c * x**3))),
}
for name, f in FORMS.items():
    x0 = mpmath.findroot(lambda x: mpmath.diff(f, x), -0.75)
    hi = np.float32(float(x0))
    lo = np.float32(float(x0 - mpmath.mpf(float(hi))))
    # g's Taylor coefficients: a_i = (i + 1) * (f's coefficient i + 1)
    f_coefficients = mpmath.taylor(f, x0, 10)
    slope = [(i + 1) * f_coefficients[i + 1] for i in range(1, 10)]
    print(f"{name}: x0 = {mpmath.nstr(x0, 20)} = {hi!r} + {lo!r}")
    print("  a9 ... a1:", ", ".join(f"{np.float32(float(a)):.8e}f" for a in reversed(slope)))
