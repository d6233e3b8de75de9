// exp, tanh and erfc on float SIMD vectors, and the compound primitives of functors.h
// (a + log1p(exp(z)), tanh(softplus(x)), Phi(x), Phi(x) + x*phi(x)), inline, written with
// at::vec operations (so one definition serves AVX2 and AVX-512) except where AVX-512 has a
// cheaper way (divide's fpclass, Phi's tables; each with its AVX2 branch beside it), and
// branch-free except Phi's tables, which leave lanes below -6.99 to the formulas.
// SLEEF's versions are calls with special-case handling that cost 2-3x more per element;
// these stay within ~2 ulp, the compound ones round about once.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cstddef>
#include <limits>

#include "normal_cdf_tables.h"

namespace fusedact {
namespace vec_float_math {

using Floats = at::vec::Vectorized<float>;
using Ints = at::vec::Vectorized<int32_t>;

// mask ? if_true : if_false lane by lane, for masks of all-ones or all-zero lanes (what the
// comparisons give): the functors' select. AVX-512: one bitwise select (vpternlogd). Moving
// the mask's sign bits into a mask register (vpmovd2m) for a masked blend was 2x slower on
// hardswish forward in cache (tools/kernel_bench.cpp: 0.60 vs 0.30 ns per element). The
// functions below keep at::vec's blendv: with this select there, gelu's backward was 13%
// slower (the compiler then spilled more of its registers).
inline Floats select(const Floats& mask, const Floats& if_true, const Floats& if_false) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(mask),
                                                       _mm512_castps_si512(if_true),
                                                       _mm512_castps_si512(if_false), 0xCA));
#else
  return Floats::blendv(if_false, if_true, mask);
#endif
}

// a/b for b = 3 or 6, as the division rounds it: q = a*(1/b), then q + (a - q*b)*(1/b),
// the remainder exact by fma (Markstein's correction). Checked against a/b for every finite
// float a (a C loop, 2026-11-23): identical wherever the quotient is a normal number. Zero,
// subnormal and infinite quotients keep q (the correction would turn -0 into +0 and inf
// into NaN); a subnormal one may then be one step off the division. A vdivps was most of
// hardsigmoid's and hardswish's time (hardswish forward in cache: 0.28 -> 0.24 ns/element).
inline Floats divide(const Floats& a, float b) {
  const Floats reciprocal(1.f / b);
  const Floats q = a * reciprocal;
  const Floats corrected = at::vec::fmadd(at::vec::fnmadd(q, Floats(b), a), reciprocal, q);
#if defined(CPU_CAPABILITY_AVX512)
  // fpclass: +-0 (0x02, 0x04), +-inf (0x08, 0x10), subnormal (0x20)
  return _mm512_mask_mov_ps(corrected, _mm512_fpclass_ps_mask(q, 0x3E), q);
#else
  const Floats magnitude = q.abs();
  return Floats::blendv(corrected, q,
                        (magnitude < Floats(std::numeric_limits<float>::min())) |
                            (magnitude == Floats(std::numeric_limits<float>::infinity())));
#endif
}

// c[0]*x^(N-1) + c[1]*x^(N-2) + ... + c[N-1] by Horner's rule, one fmadd per coefficient.
template <size_t N>
inline Floats horner(const Floats& x, const float (&c)[N]) {
  Floats p(c[0]);
  for (size_t i = 1; i < N; ++i) p = at::vec::fmadd(p, x, Floats(c[i]));
  return p;
}

// ln 2 in two parts: kLn2Hi has few enough bits that n*kLn2Hi is exact for the n here.
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.12194440e-4f;

// 2^k for integer-valued k in [-126, 127], built in the exponent field.
inline Floats pow2(const Floats& k) {
  const Ints biased = at::vec::convert_to_int_of_same_size(k) + Ints(127);
  return at::vec::cast<float>(biased << Ints(23));
}

// y * 2^n for integer-valued n in [-252, 254], applied in two halves so that results down to
// the subnormals round once.
inline Floats times_pow2(const Floats& y, const Floats& n) {
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_ps(y, n);  // in one instruction, rounded once like the below
#else
  const Floats half_n = (n * Floats(0.5f)).floor();
  return y * pow2(half_n) * pow2(n - half_n);
#endif
}

// expm1(r) = r + r^2 p(r) for |r| <= ln2/2 (a little more after exp_sum's addition), p by a
// degree-5 minimax polynomial (Cephes' expf coefficients), evaluated as three linear pieces
// in r, r^2 and r^4 (Estrin's scheme): three multiply-adds deep where Horner's rule is five.
// The exp-based loops are bound by their dependency chains more than by their instruction
// count (with nearest_ln2_multiple's shift below, glu forward, bfloat16, in cache: 0.46 ->
// 0.40 ns per element).
inline Floats expm1_reduced(const Floats& r) {
  const Floats r2 = r * r;
  const Floats low = at::vec::fmadd(Floats(1.6666665459e-1f), r, Floats(5.0000001201e-1f));
  const Floats mid = at::vec::fmadd(Floats(8.3334519073e-3f), r, Floats(4.1665795894e-2f));
  const Floats high = at::vec::fmadd(Floats(1.9875691500e-4f), r, Floats(1.3981999507e-3f));
  const Floats p = at::vec::fmadd(r2 * r2, high, at::vec::fmadd(r2, mid, low));
  return at::vec::fmadd(p, r2, r);
}

// exp(r) * 2^n: 1 + expm1(r), the small part first, so only the last addition rounds at 1's
// scale.
inline Floats exp_reduced(const Floats& r, const Floats& n) {
  return times_pow2(expm1_reduced(r) + Floats(1.f), n);
}

constexpr float kExpMaxArg = 88.72283935546875f;  // largest float with a finite exp
constexpr float kExpMinArg = -104.f;                // exp rounds to 0 below
// Where exp and exp_nonpositive hold x. Between these and the limits above, the final scaling
// by 2^n overflows to inf or underflows to 0 by itself, so no compare and blend is needed
// (glu forward, float32, in cache: 0.37 -> 0.32 ns per element); the clamps only keep +-inf
// and huge values out of the reduction.
constexpr float kExpClampHigh = 100.f;
constexpr float kExpClampLow = -150.f;

constexpr float kLog2E = 1.44269504088896341f;  // 1/ln 2
// Added to a float of magnitude below 2^21, 1.5 * 2^23 leaves no fraction bits: the sum is
// rounded to an integer, which its low mantissa bits hold, and subtracting it back is exact.
constexpr float kRoundingShift = 12582912.f;

// n = round(x/ln 2), for |x| < 2^21, by kRoundingShift (two steps where a multiply and a
// round instruction take half again as long).
inline Floats nearest_ln2_multiple(const Floats& x) {
  const Floats shift(kRoundingShift);
  return at::vec::fmadd(x, Floats(kLog2E), shift) - shift;
}

// a - n*ln 2, with the two parts of ln 2 so the products are exact.
inline Floats minus_n_ln2(const Floats& a, const Floats& n) {
  return at::vec::fnmadd(n, Floats(kLn2Lo), at::vec::fnmadd(n, Floats(kLn2Hi), a));
}

// 2^(j/16) for j = 0..15 rounded to float, and the relative error of that rounding,
// (2^(j/16) - table)/table rounded to float (tools/exp_table.py prints both). Plain arrays:
// a vector constant here would be initialized when the library loads, on any CPU.
alignas(64) constexpr float kExp2Sixteenths[16] = {
    1.0f, 1.0442737340927124f, 1.0905077457427979f, 1.1387885808944702f, 1.1892070770263672f,
    1.2418577671051025f, 1.2968395948410034f, 1.3542555570602417f, 1.4142135381698608f,
    1.4768261909484863f, 1.5422108173370361f, 1.610490322113037f, 1.6817928552627563f,
    1.7562521696090698f, 1.8340080976486206f, 1.9152065515518188f};
alignas(64) constexpr float kExp2SixteenthsError[16] = {
    0.0f, 4.628547146e-08f, -1.199215749e-08f, 4.729782432e-08f, 3.193418152e-08f,
    3.621057232e-08f, -3.099071932e-08f, -7.475213337e-09f, 1.711427089e-08f, -3.047683350e-08f,
    5.233334210e-09f, 6.107591766e-09f, -1.471960509e-08f, -5.258795177e-09f, -6.128259677e-09f,
    5.140609272e-09f};

// exp(x) for x in [kExpClampLow, kExpClampHigh] (or NaN), no clamps: the callers bound x.
// AVX-512: x = (16k + j) ln2/16 + r with |r| <= ln2/32, and exp(x) = 2^k T[j] (1 + e) with
// T[j] = 2^(j/16) from a table that one permute reads out of a register (its rounding error
// folded into r), and e = expm1(r) as r + r^2 (c2 + c3 r) with c2, c3 fitted for the
// least maximum relative error of exp(r) on that interval (1.6e-9; tools/exp_table.py). A
// shorter dependency chain than the degree-5 polynomial of the AVX2 branch (glu forward,
// bfloat16, in cache: 0.37 -> 0.35 ns per element) and more accurate: max 0.56 ulp, mean
// 0.250, against 1.03 and 0.267 (tools/exp_ulp.cpp, 2026-11-24). The branches can differ by
// an ulp.
inline Floats exp_in_range(const Floats& x) {
#if defined(CPU_CAPABILITY_AVX512)
  const Floats shift(kRoundingShift);
  const Floats t = at::vec::fmadd(x, Floats(16.f * kLog2E), shift);
  const Floats n = (t - shift) * Floats(0.0625f);  // k + j/16, exactly
  // t's low mantissa bits hold 16k + j; the permutes read the lowest 4, j
  const __m512i j = _mm512_castps_si512(t);
  const Floats table = _mm512_permutexvar_ps(j, _mm512_load_ps(kExp2Sixteenths));
  const Floats table_error = _mm512_permutexvar_ps(j, _mm512_load_ps(kExp2SixteenthsError));
  // r = x - n ln2 plus T[j]'s relative error (exp(r + d) = exp(r) (1 + d) to d^2), rounded
  // once: the low part of n ln2 less that error is far below r's last place.
  const Floats r = at::vec::fnmadd(n, Floats(kLn2Hi), x) -
                   at::vec::fmsub(n, Floats(kLn2Lo), table_error);
  const Floats e = at::vec::fmadd(at::vec::fmadd(r, Floats(0.16666719317436218f),
                                                 Floats(0.5000162124633789f)),
                                  r * r, r);
  return _mm512_scalef_ps(at::vec::fmadd(table, e, table), n);  // 2^floor(n) = 2^k
#else
  const Floats n = nearest_ln2_multiple(x);
  return exp_reduced(minus_n_ln2(x, n), n);
#endif
}

// exp(x), within ~1 ulp.
inline Floats exp(const Floats& x) {
  // clamp_min/clamp_max pass a NaN in x on (plain max/min instructions, no NaN checks)
  return exp_in_range(
      at::vec::clamp_max(at::vec::clamp_min(x, Floats(kExpClampLow)), Floats(kExpClampHigh)));
}

// exp(x) for x <= 0 or NaN (softmax's x - max, log-probabilities): exp without the upper
// clamp, exact 0 below kExpMinArg (-inf included), NaN for NaN.
inline Floats exp_nonpositive(const Floats& x) {
  return exp_in_range(at::vec::clamp_min(x, Floats(kExpClampLow)));
}

// expm1(x) = 2^n * expm1(r) + (2^n - 1), x = n*ln2 + r, within 1.4 ulp (tools/ulp_scan.py,
// elu and celu): expm1(r) by expm1_reduced (r = x exactly for n = 0, so no cancellation near
// 0), 2^n - 1 exact for |n| <= 24 and the sum rounded once by fma. Below -17.5 (n held at
// -24) it rounds to -1; past n = 24 the -1 is below an ulp of the product.
inline Floats expm1(const Floats& x) {
  const Floats clamped =
      at::vec::clamp_max(at::vec::clamp_min(x, Floats(-17.5f)), Floats(kExpMaxArg));
  const Floats n = at::vec::clamp_min(nearest_ln2_multiple(clamped), Floats(-24.f));
  const Floats expm1_r = expm1_reduced(minus_n_ln2(clamped, n));
  const Floats two_n = pow2(at::vec::clamp_max(n, Floats(24.f)));
  const Floats moderate = at::vec::fmadd(two_n, expm1_r, two_n - Floats(1.f));
  const Floats large = times_pow2(expm1_r + Floats(1.f), n) - Floats(1.f);
  const Floats result = Floats::blendv(moderate, large, n > Floats(24.f));
  const Floats finite = Floats::blendv(result, Floats(std::numeric_limits<float>::infinity()),
                                       x > Floats(kExpMaxArg));
  return Floats::blendv(finite, x, x == Floats(0.f));  // expm1(-0) = -0
}

// exp(a + b) for a <= 0 and small |b|, without rounding a + b: the reduction is exact for
// a, and b joins the reduced argument (erfc's exp(-z^2 + q) keeps its accuracy this way).
inline Floats exp_sum(const Floats& a, const Floats& b) {
  const Floats sum = a + b;
  const Floats n = nearest_ln2_multiple(at::vec::clamp_min(sum, Floats(kExpMinArg)));
  const Floats r = minus_n_ln2(a, n) + b;
  return Floats::blendv(exp_reduced(r, n), Floats(0.f), sum < Floats(kExpMinArg));
}

// copysign(magnitude, sign): magnitude's bits but the sign bit, sign's sign bit.
inline Floats copysign(const Floats& magnitude, const Floats& sign) {
  return magnitude.abs() | (sign & Floats(-0.f));
}

// tanh: below |x| = 0.625, |x| + |x|^3 p(x^2), p of degree 5 fitted to tanh
// (tools/tanh_series_fit.py: relative error 3e-9, 0.72 ulp in float32 arithmetic); from
// there 1 - 2/(exp(2|x|) + 1), which loses at most one bit to the subtraction, by
// exp_in_range (2|x| is held at 18.5, past which the result rounds to 1: no clamp below,
// no overflow). Then x's sign (tanh(-0) = -0). In place of a Taylor series through x^19 and
// the full exp: 0.58 -> 0.47 ns per element in cache (tools/kernel_bench.cpp).
inline Floats tanh(const Floats& x) {
  const Floats a = x.abs();
  const Floats z = x * x;
  const Floats p = horner(z, {2.138185314834118e-3f, -8.171802386641502e-3f,
                              2.1698251366615295e-2f, -5.3946271538734436e-2f,
                              0.1333320140838623f, -0.3333333134651184f});
  const Floats series = at::vec::fmadd(a, z * p, a);
  const Floats exp_2a = exp_in_range(at::vec::clamp_max(a + a, Floats(18.5f)));
  const Floats large = Floats(1.f) - Floats(2.f) / (exp_2a + Floats(1.f));
  return copysign(select(a < Floats(0.625f), series, large), x);
}

// t = 1/(1 + z/2) and q(t), Numerical Recipes' erfcc fit: erfc(z) = t*exp(-z^2 + q(t)) for
// z >= 0, fractional error < 1.2e-7.
inline Floats erfc_t(const Floats& z) {
  return Floats(1.f) / at::vec::fmadd(Floats(0.5f), z, Floats(1.f));
}
inline Floats erfc_fit(const Floats& t) {
  return horner(t, {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                    -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f});
}

// erfc(z)*exp(z^2)/t as a polynomial in that t, for t in [0.16, 1] (z <= 10.5; past it
// exp(-z^2) is 0 in float): relative error 4e-8 (tools/erfc_scaled_fit.py), for a caller that
// has exp(-z^2) already.
inline Floats erfc_scaled_fit(const Floats& t) {
  return horner(t, {-5.91943301e-02f, 2.85187572e-01f, -4.88470376e-01f, 2.79523015e-01f,
                    -2.76302639e-02f, 2.03112647e-01f, 2.42995977e-01f, 2.82390147e-01f,
                    2.82085568e-01f});
}

// erfc(x + x_lo), x_lo a correction below x's last place (the rounding error of a scaled
// argument: in the tail it moves z^2 by 2*z*x_lo, 8e-6 relative at z = 9 for half an ulp).
// For z = |x|, t = 1/(1 + z/2), erfc(z) = t*exp(-z^2 + q(t)) with the Chebyshev fit q of
// Numerical Recipes' erfcc (fractional error < 1.2e-7 for all z), z^2 carried exactly (its
// rounding error joins q); erfc(x) = 2 - erfc(-x) for x < 0.
inline Floats erfc(const Floats& x, const Floats& x_lo) {
  const Floats z = x.abs();
  const Floats z_lo = Floats::blendv(x_lo, x_lo.neg(), x < Floats(0.f));
  const Floats t = erfc_t(z);
  const Floats q = erfc_fit(t);
  const Floats z2 = z * z;
  // (z + z_lo)^2 - z2: z*z - z2 exactly, plus 2*z*z_lo (0 where z2 is infinite: inf - inf
  // would make erfc(+-inf) NaN)
  const Floats z2_error =
      Floats::blendv(at::vec::fmadd(z + z, z_lo, at::vec::fmsub(z, z, z2)), Floats(0.f),
                     z2 == Floats(std::numeric_limits<float>::infinity()));
  const Floats tail = t * exp_sum(z2.neg(), q - z2_error);
  return Floats::blendv(tail, Floats(2.f) - tail, x < Floats(0.f));
}

inline Floats erfc(const Floats& x) { return erfc(x, Floats(0.f)); }

// ---------------------------------------------------------------------------------------
// Double-float arithmetic: a value carried as hi + lo, for the compound primitives below,
// whose float formulas would round several times (a + log1p(exp(z)), tanh(softplus(x))).
// They rely on IEEE addition (no -ffast-math).

// s + err == a + b exactly, whatever the magnitudes (Knuth's two-sum).
inline void two_sum(const Floats& a, const Floats& b, Floats& s, Floats& err) {
  s = a + b;
  const Floats b_part = s - a;
  err = (a - (s - b_part)) + (b - b_part);
}

// s + err == a + b exactly, for |a| >= |b| (Dekker's fast two-sum).
inline void fast_two_sum(const Floats& a, const Floats& b, Floats& s, Floats& err) {
  s = a + b;
  err = b - (s - a);
}

// exp(x) as hi + lo, to about 2^-30 relative, for x <= 88 (both 0 below kExpMinArg; NaN for
// NaN). r = x - n*ln2 is carried in two parts; exp(r) = 1 + r + r^2/2 + r^3*q(r), q the Taylor
// series through r^8 (truncation < 2^-32 for |r| <= ln2/2); the sum 1 + r + r^2/2 is taken
// with its rounding errors (two-sums, and r^2/2's by fma), which go into lo.
inline void exp_split(const Floats& x, Floats& hi, Floats& lo) {
  const Floats n = nearest_ln2_multiple(at::vec::clamp_min(x, Floats(kExpMinArg)));
  Floats r, r_err;  // r + r_err = x - n*ln2, to n*kLn2Lo's rounding (below 2^-35)
  two_sum(at::vec::fmadd(n.neg(), Floats(kLn2Hi), x), n * Floats(-kLn2Lo), r, r_err);
  const Floats half_r = r * Floats(0.5f);
  const Floats half_r2 = half_r * r;
  const Floats half_r2_err = at::vec::fmsub(half_r, r, half_r2);
  const Floats q = horner(r, {1.f / 40320, 1.f / 5040, 1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6});
  Floats one_r, one_r_err, head, head_err;
  fast_two_sum(Floats(1.f), r, one_r, one_r_err);
  fast_two_sum(one_r, half_r2, head, head_err);
  // exp(r + r_err) = exp(r) * (1 + r_err), to r_err^2
  const Floats tail = at::vec::fmadd(r_err, head, one_r_err + head_err + half_r2_err + r * r * r * q);
  Floats sum, sum_err;  // normalized: tail holds r^3 q, up to 2^-7 of head
  fast_two_sum(head, tail, sum, sum_err);
  const Floats underflow = x < Floats(kExpMinArg);
  hi = Floats::blendv(times_pow2(sum, n), Floats(0.f), underflow);
  lo = Floats::blendv(times_pow2(sum_err, n), Floats(0.f), underflow);
}

// a + log1p(exp(z)) for z <= 0 (or NaN), rounded about once: e = exp(z) in [0, 1] as hi + lo
// (exp_split); log1p(e) = 2*atanh(s) with s = e/(2 + e) in [0, 1/3] as s + s_lo (the
// quotient's remainder by fma), by the odd series through s^15 (truncation < 2^-29
// relative); its head 2s joins a by a two-sum.
inline Floats add_log1p_exp(const Floats& a, const Floats& z) {
  Floats e, e_lo, d, d_lo;
  exp_split(z, e, e_lo);
  fast_two_sum(Floats(2.f), e, d, d_lo);
  d_lo = d_lo + e_lo;
  const Floats s = e / d;
  const Floats s_lo = (at::vec::fmadd(s.neg(), d, e) + e_lo - s * d_lo) / d;
  const Floats s2 = s * s;
  const Floats series =
      horner(s2, {2.f / 15.f, 2.f / 13.f, 2.f / 11.f, 2.f / 9.f, 2.f / 7.f, 2.f / 5.f, 2.f / 3.f});
  // log1p(e) = 2s + (s^3 series + 2 s_lo (1 + s^2)), the last factor the series' derivative
  const Floats log1p_lo = at::vec::fmadd(s_lo + s_lo, s2 + Floats(1.f), s * s2 * series);
  Floats sum, sum_err;
  two_sum(a, s + s, sum, sum_err);
  // a = +-inf: the two-sum's error is NaN there, the plain sum is the answer
  return Floats::blendv(sum + (sum_err + log1p_lo), sum,
                        a.abs() == Floats(std::numeric_limits<float>::infinity()));
}

// tanh(softplus(x)) = n/(n + 2), n = e^x (e^x + 2), for x <= 20 (mish below its saturation),
// rounded about once: e^x as hi + lo (exp_split), n and n + 2 as hi + lo (e^2's error by
// fma, two-sums), the quotient corrected by its remainder (fma).
inline Floats tanh_softplus(const Floats& x) {
  Floats e, e_lo, n, n_lo, d, d_lo;
  exp_split(x, e, e_lo);
  const Floats e2 = e * e;
  two_sum(e2, e + e, n, n_lo);
  n_lo = n_lo + at::vec::fmsub(e, e, e2) + (e_lo + e_lo) * (e + Floats(1.f));
  two_sum(n, Floats(2.f), d, d_lo);
  d_lo = d_lo + n_lo;
  const Floats m = n / d;
  return m + (at::vec::fmadd(m.neg(), d, n) + n_lo - m * d_lo) / d;
}

// -1/sqrt(2) in two parts: the float nearest, and the rest.
constexpr float kMinusSqrt1_2Hi = -0.70710677f;
constexpr float kMinusSqrt1_2Lo = -1.21016175e-08f;

// Phi(x) = erfc(-x/sqrt2)/2, the standard normal's cdf, with -x/sqrt2 carried in two parts:
// max 11.9 ulp in gelu (tools/ulp_scan.py). normal_cdf below uses it for x < -6.99.
inline Floats normal_cdf_by_erfc(const Floats& x) {
  const Floats z = x * Floats(kMinusSqrt1_2Hi);
  const Floats z_lo =
      at::vec::fmadd(x, Floats(kMinusSqrt1_2Lo), at::vec::fmsub(x, Floats(kMinusSqrt1_2Hi), z));
  return Floats(0.5f) * erfc(z, z_lo);
}

// Phi(x) + x*phi(x) (gelu's derivative), phi(x) = exp(-x^2/2)/sqrt(2 pi), sharing that exp:
// with z = |x|/sqrt2, erfc(z) = t*exp(-x^2/2)*erfc_scaled_fit(t), Phi(x) = erfc(z)/2 for
// x < 0, 1 - erfc(z)/2 else; x^2 is carried in two parts into the exp. Near its zero
// x0 = -0.7518 the two terms cancel: their float errors (a few ulps of Phi(x0) = 0.23) are
// 1e-5 of the result at 2e-3 from x0. Within 1/4 of x0 it is its Taylor series at x0 through
// (x - x0)^9 (mpmath, 50 digits: tools/gelu_slope_series.py), x0 in two parts: ~3 ulps there.
// cdf_plus_x_pdf below uses it for x < -6.99 and x = +inf.
inline Floats cdf_plus_x_pdf_by_exp(const Floats& x) {
  const Floats x2 = x * x;
  const Floats x2_error = Floats::blendv(at::vec::fmsub(x, x, x2), Floats(0.f),
                                         x2 == Floats(std::numeric_limits<float>::infinity()));
  const Floats gauss = exp_sum(x2 * Floats(-0.5f), x2_error * Floats(-0.5f));  // exp(-x^2/2)
  const Floats t_erfc = erfc_t(x.abs() * Floats(-kMinusSqrt1_2Hi));  // z = |x|/sqrt2
  const Floats half_tail = Floats(0.5f) * t_erfc * gauss * erfc_scaled_fit(t_erfc);
  const Floats cdf = Floats::blendv(Floats(1.f) - half_tail, half_tail, x < Floats(0.f));
  const Floats pdf = Floats(0.39894228f) * gauss;  // 1/sqrt(2 pi)
  const Floats t = (x - Floats(-0.75179154f)) - Floats(1.211445e-08f);  // x - x0_hi is exact
  const Floats series =
      t * horner(t, {-7.44826859e-04f, -2.23953812e-03f, 4.53922851e-03f, 1.94216799e-02f,
                     -1.47715220e-02f, -1.14008233e-01f, -1.81996766e-02f, 3.88284981e-01f,
                     4.31493998e-01f});
  return Floats::blendv(cdf + x * pdf, series, t.abs() <= Floats(0.25f));
}

#if defined(CPU_CAPABILITY_AVX512)
constexpr float kTailTableLast = 6.99f;  // the tables reach 7; f(6.99) = 31.93 stays below 32

// Row `row`'s coefficient of each lane's interval: one two-register permute (vpermt2ps).
inline Floats lookup(const float (&row)[32], const __m512i& index) {
  return _mm512_permutex2var_ps(_mm512_load_ps(row), index, _mm512_load_ps(row + 16));
}

// table's function of a = |x| (Phi(-a) or gelu's slope at -a) by normal_cdf_tables.h: each
// lane's interval, then Horner's rule in a - center (exact), every coefficient a lookup.
// |x| past 6.99 is held there: a caller replaces x < -6.99, and for x > 6.99 the value is
// under 2e-12, nothing against the 1 it is subtracted from. No exp, no division: in cache,
// normal(0, 1) inputs, gelu forward 0.95-1.14 -> 0.47 ns/element and backward 1.03-1.20 ->
// 0.49 (tools/kernel_bench.cpp 1, AMD EPYC; normal(0, 3), 15% of vectors with a lane below
// -6.99: 0.67 and 0.64).
inline Floats tail_table(const float (&table)[7][32], const Floats& x) {
  using namespace normal_cdf_tables;
  const Floats a = at::vec::clamp_max(x.abs(), Floats(kTailTableLast));  // NaN stays NaN
  const __m512i index =
      _mm512_cvttps_epi32(a * at::vec::fmadd(Floats(kBeta), a, Floats(kAlpha)));
  const Floats s = a - lookup(kCenter, index);
  Floats p = lookup(table[0], index);
  for (int row = 1; row < 7; ++row) p = at::vec::fmadd(p, s, lookup(table[row], index));
  return p;
}

// tail for x < 0, 1 - tail for x >= 0 (and NaN); then `slow` (a callable giving the whole
// vector) in the lanes of `beyond`, called only when a lane is there.
template <class Slow>
inline Floats reflect_tail(const Floats& x, const Floats& tail, __mmask16 beyond,
                           const Slow& slow) {
  const __mmask16 nonnegative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_NLT_UQ);
  const Floats result = _mm512_mask_sub_ps(tail, nonnegative, Floats(1.f), tail);
  return beyond == 0 ? result : Floats(_mm512_mask_mov_ps(result, beyond, slow()));
}
#endif

// Phi(x). AVX-512: 1 - Phi(-|x|) or Phi(-|x|) from the table (gelu within 2.6 ulp:
// tests/python/test_gelu_accuracy.py), the erfc formula below -6.99. AVX2 has no 32-entry
// permute: the erfc formula.
inline Floats normal_cdf(const Floats& x) {
#if defined(CPU_CAPABILITY_AVX512)
  const __mmask16 beyond = _mm512_cmp_ps_mask(x, Floats(-kTailTableLast), _CMP_LT_OQ);
  return reflect_tail(x, tail_table(normal_cdf_tables::kUpperTail, x), beyond,
                      [&] { return normal_cdf_by_erfc(x); });
#else
  return normal_cdf_by_erfc(x);
#endif
}

// Phi(x) + x*phi(x) = 1 - (Phi(-x) - x*phi(x)). AVX-512: by the table, within 2 ulp through
// its zero at x = -0.7518; the exp formula below -6.99 and at +inf (NaN there, inf*0, as
// torch). AVX2: the exp formula.
inline Floats cdf_plus_x_pdf(const Floats& x) {
#if defined(CPU_CAPABILITY_AVX512)
  const __mmask16 beyond = _mm512_cmp_ps_mask(x, Floats(-kTailTableLast), _CMP_LT_OQ) |
                           _mm512_fpclass_ps_mask(x, 0x08);  // +inf
  return reflect_tail(x, tail_table(normal_cdf_tables::kSlopeTail, x), beyond,
                      [&] { return cdf_plus_x_pdf_by_exp(x); });
#else
  return cdf_plus_x_pdf_by_exp(x);
#endif
}

// The tanh form's derivative, given its float formula `formula` (Gelu::tanh_slope): within
// 1/4 of its zero x0 = -0.7525, where the formula's terms cancel (up to 45958 ulps in
// tools/ulp_scan.py), the Taylor series at x0 through (x - x0)^9 (tools/gelu_slope_series.py;
// truncation below 3e-9 relative), x0 in two parts.
inline Floats tanh_gelu_slope(const Floats& x, const Floats& formula) {
  const Floats t = (x - Floats(-0.75246143f)) - Floats(1.1339628e-08f);  // x - x0_hi is exact
  const Floats series =
      t * horner(t, {-9.27442044e-04f, -2.42273184e-03f, 5.26105938e-03f, 1.96823087e-02f,
                     -1.66193284e-02f, -1.13944486e-01f, -1.57828536e-02f, 3.87518436e-01f,
                     4.30400103e-01f});
  return Floats::blendv(formula, series, t.abs() <= Floats(0.25f));
}

}  // namespace vec_float_math
}  // namespace fusedact
