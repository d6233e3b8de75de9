"""The constants of vec_float_math.h's AVX-512 exp:
- 2^(j/16) for j = 0..15 rounded to float32, and the relative error of that rounding,
  (2^(j/16) - table)/table rounded to float32, from 40-digit mpmath values;
- c2, c3 of exp(r) ~ 1 + r + r^2 (c2 + c3 r) with the least maximum relative error on
  |r| <= ln2/32 (a little wider, for the reduction's rounding), by Remez's exchange.
Run: .venv/bin/python tools/exp_table.py"""
import struct

from mpmath import log, lu_solve, matrix, mp, mpf

mp.dps = 40


def to_float32(v):
    return struct.unpack("f", struct.pack("f", float(v)))[0]


values = [mp.power(2, mpf(j) / 16) for j in range(16)]
table = [to_float32(v) for v in values]
errors = [to_float32((v - mpf(t)) / mpf(t)) for v, t in zip(values, table)]
print("kExp2Sixteenths:", ", ".join(f"{t!r}f" for t in table))
print("kExp2SixteenthsError:", ", ".join(f"{e:.9e}f" for e in errors))

h = log(2) / 32 * mpf("1.002")
grid = [h * i / 1000 for i in range(-1000, 1001)]


def relative_error(c, r):
    return (1 + r + r * r * (c[0] + c[1] * r)) / mp.exp(r) - 1


# Two coefficients: the error equioscillates at three points. Solve for the coefficients that
# make it +E, -E, +E there, then move the points to the extrema of each sign run; repeat.
points = [-h, -h / 10, h]
for _ in range(6):
    a, b = matrix(3, 3), matrix(3, 1)
    for k, r in enumerate(points):
        a[k, 0], a[k, 1], a[k, 2] = r * r, r**3, (-1) ** k * mp.exp(r)
        b[k] = mp.exp(r) - 1 - r
    solution = lu_solve(a, b)
    c = [solution[0], solution[1]]
    e = [relative_error(c, r) for r in grid]
    runs, run = [], [0]
    for i in range(1, len(grid)):
        if (e[i] >= 0) == (e[run[-1]] >= 0):
            run.append(i)
        else:
            runs.append(run)
            run = [i]
    runs.append(run)
    extrema = sorted((max(run, key=lambda i: abs(e[i])) for run in runs), key=lambda i: -abs(e[i]))
    points = sorted(grid[i] for i in extrema[:3])
c32 = [to_float32(v) for v in c]
worst = max(abs(relative_error([mpf(v) for v in c32], r)) for r in grid)
print(f"c2 = {c32[0]!r}f, c3 = {c32[1]!r}f: max relative error {float(worst):.3g}")
