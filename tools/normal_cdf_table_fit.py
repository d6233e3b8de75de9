"""The tables of the AVX-512 normal_cdf and cdf_plus_x_pdf (csrc/cpu/vec_float_math.h): for
a = |x| in [0, 7), 32 intervals, on each a degree-6 polynomial in s = a - center of
  upper tail  E(a) = erfc(a/sqrt2)/2 = Phi(-a)             (Phi(x) = E or 1 - E)
  gelu slope  G(a) = E(a) - a*phi(a) = Phi(-a) - a*phi(a)  (Phi(x) + x*phi(x) = G or 1 - G)
The intervals are uniform in f(a) = a*(ALPHA + BETA*a), so they narrow as the tails steepen
(widths 0.57 at 0 to 0.13 at 7). Each polynomial is fitted for relative error, by least
squares at Chebyshev nodes reweighted toward equal ripple, its coefficients rounded to
float32 from the highest down, each rounding followed by a refit of the lower ones. G's
interval around its zero a0 = 0.7518 is centered on the float nearest a0, so that s is exact
there and the polynomial keeps G's relative accuracy through the zero (the constant term is
G at that float, tiny). Reference values in double (math.erfc; G's cancellation near a0
costs ~1e-17 absolute).
Prints the fit's error and that of a float32 Horner evaluation (fma emulated in double),
then the C++ tables of csrc/cpu/normal_cdf_tables.h.
Run: .venv/bin/python tools/normal_cdf_table_fit.py"""
import math

import numpy as np

END, INTERVALS, DEGREE = 7.0, 32, 6
ALPHA = 2.0
BETA = float(np.float32((INTERVALS - END * ALPHA) / (END * END)))  # f(END) = 32
NODES = 160


def upper_tail(a):
    return 0.5 * math.erfc(a / math.sqrt(2))


def slope_tail(a):
    return upper_tail(a) - a * math.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)


def boundary(i):  # f(a) = i
    return (-ALPHA + math.sqrt(ALPHA * ALPHA + 4 * BETA * i)) / (2 * BETA)


def slope_zero():  # G(a0) = 0, by bisection: G > 0 below a0
    lo, hi = 0.5, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if slope_tail(mid) > 0 else (lo, mid)
    return lo


def fit(function, lo, hi, center, constant=None):
    """Coefficients, highest degree first; with `constant`, the constant term is that value
    and the rest are fitted to (function - constant)/s."""
    # a little past the interval: float32's f(a) may put a point next to a boundary one over
    half = (hi - lo) / 2 * (1 + 1e-5)
    a = (lo + hi) / 2 + half * np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)
    s = a - center
    values = np.array([function(v) for v in a])
    scale = np.abs(values)
    lowest = 0
    if constant is not None:
        values, scale, lowest = (values - constant) / s, scale / np.abs(s), 1
    rounded = []  # highest degree first
    for degree in range(DEGREE - lowest, -1, -1):
        target = values - sum(c * s ** (DEGREE - lowest - i) for i, c in enumerate(rounded))
        weights = 1 / scale
        for _ in range(25):
            c = np.polynomial.polynomial.polyfit(s, target, degree, w=weights)
            error = np.abs(np.polynomial.polynomial.polyval(s, c) - target) / scale
            weights = weights * (error / error.max() + 1e-3) ** 0.5
        if degree == DEGREE - lowest:
            fit_error = error.max()
        rounded.append(float(np.float32(c[degree])))
    if constant is not None:
        rounded.append(constant)
    return rounded, fit_error


def float32_horner(coefficients, s):
    p = np.full_like(s, coefficients[0])
    for c in coefficients[1:]:
        p = (p * s + c).astype(np.float32).astype(np.float64)  # fma: one rounding
    return p


def main():
    centers = [float(np.float32((boundary(i) + boundary(i + 1)) / 2)) for i in range(INTERVALS)]
    zero = slope_zero()
    zero_interval = next(i for i in range(INTERVALS) if boundary(i + 1) > zero)
    centers[zero_interval] = float(np.float32(zero))  # E's fit does not mind, G's needs it
    # every float32 a in [0, 7) would be 1.1e9 points: a dense sample, the float32 neighbors
    # of G's zero and the boundaries; each point's interval as the kernel computes it
    rng = np.random.default_rng(0)
    check32 = np.concatenate([np.linspace(0, 6.99, 400001), rng.uniform(0, 6.99, 400000),
                              0.7517915 + np.arange(-2000, 2000) * 6e-8,
                              [boundary(i) for i in range(INTERVALS)]]).astype(np.float32)
    check = check32.astype(np.float64)
    index = np.floor(check32 * (np.float32(BETA) * check32 + np.float32(ALPHA))).astype(np.int64)
    tables = {}
    for name, function in (("upper tail E", upper_tail), ("gelu slope G", slope_tail)):
        coefficients, fit_errors = [], []
        for i in range(INTERVALS):
            constant = None
            if function is slope_tail and i == zero_interval:  # G(center), exact to 1e-8
                constant = float(np.float32(slope_tail(centers[i])))
            c, e = fit(function, boundary(i), boundary(i + 1), centers[i], constant)
            coefficients.append(c)
            fit_errors.append(e)
        reference = np.array([function(v) for v in check])
        got = np.empty_like(check)
        for i in range(INTERVALS):
            at = index == i
            s = (check32[at] - np.float32(centers[i])).astype(np.float64)
            got[at] = float32_horner(coefficients[i], s)
        ulp = 2.0 ** (np.floor(np.log2(np.abs(reference))) - 23)
        worst = (np.abs(got - reference) / ulp).max()
        print(f"{name}: fit relative error {max(fit_errors):.2e}; float32 Horner max "
              f"{worst:.2f} ulp")
        tables[name] = coefficients
    print(f"// kSlopeTail's zero, a = {zero:.10f}: the center of interval {zero_interval}")
    print(f"constexpr float kAlpha = {ALPHA}f, kBeta = {float(np.float32(BETA)):.9g}f;")
    print_table("kCenter[32]", [centers])
    print_table("kUpperTail[7][32]", [[c[d] for c in tables["upper tail E"]] for d in range(7)])
    print_table("kSlopeTail[7][32]", [[c[d] for c in tables["gelu slope G"]] for d in range(7)])


def print_table(declaration, rows):  # rows of 32 floats, as C++
    def lines(values, indent):
        for i in range(0, len(values), 5):
            print(" " * indent + " ".join(f"{v:.9g}f," for v in values[i:i + 5]))
    print(f"alignas(64) constexpr float {declaration} = {{")
    if len(rows) == 1:
        lines(rows[0], 4)
    else:
        for row in rows:
            print("    {")
            lines(row, 8)
            print("    },")
    print("};")


if __name__ == "__main__":
    main()
