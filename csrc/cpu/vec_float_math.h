// exp, tanh, erfc and log1p on float SIMD vectors, written with at::vec operations only (so one
// definition serves AVX2 and AVX-512), inline and branch-free. SLEEF's versions are calls
// with special-case handling that cost 2-3x more per element; these stay within ~2 ulp.
// Included by vectorized_impl.h under the per-instruction-set target pragma.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cstddef>
#include <limits>

namespace fusedact {
namespace vec_float_math {

using Floats = at::vec::Vectorized<float>;
using Ints = at::vec::Vectorized<int32_t>;

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

// exp(r) * 2^n for |r| <= ln2/2 (a little more after exp_sum's addition): exp(r) by a
// degree-6 minimax polynomial (Cephes' expf coefficients), 2^n applied in two halves so
// results down to the subnormals round once.
inline Floats exp_reduced(const Floats& r, const Floats& n) {
  const Floats p = horner(r, {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                              4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f});
  // 1 + (r + r^2 p): the small part first, so only the last addition rounds at 1's scale.
  const Floats y = at::vec::fmadd(p, r * r, r) + Floats(1.f);
#if defined(CPU_CAPABILITY_AVX512)
  return _mm512_scalef_ps(y, n);  // y * 2^n in one instruction, rounded once like the below
#else
  const Floats half_n = (n * Floats(0.5f)).floor();
  return y * pow2(half_n) * pow2(n - half_n);
#endif
}

constexpr float kExpMaxArg = 88.72283935546875f;  // largest float with a finite exp
constexpr float kExpMinArg = -104.f;                // exp rounds to 0 below

// n = round(x/ln 2).
inline Floats nearest_ln2_multiple(const Floats& x) {
  return (x * Floats(1.44269504088896341f)).round();
}

// a - n*ln 2, with the two parts of ln 2 so the products are exact.
inline Floats minus_n_ln2(const Floats& a, const Floats& n) {
  return at::vec::fmadd(n.neg(), Floats(kLn2Lo), at::vec::fmadd(n.neg(), Floats(kLn2Hi), a));
}

// exp(x), within ~1 ulp.
inline Floats exp(const Floats& x) {
  // clamp_min/clamp_max pass a NaN in x on (plain max/min instructions, no NaN checks)
  const Floats clamped =
      at::vec::clamp_max(at::vec::clamp_min(x, Floats(kExpMinArg)), Floats(kExpMaxArg));
  const Floats n = nearest_ln2_multiple(clamped);
  const Floats result = exp_reduced(minus_n_ln2(clamped, n), n);
  return Floats::blendv(result, Floats(std::numeric_limits<float>::infinity()),
                        x > Floats(kExpMaxArg));
}

// exp(x) for x <= 0 or NaN (softmax's x - max, log-probabilities): exp's arithmetic
// without the clamps, exact 0 below kExpMinArg (-inf included), NaN for NaN.
inline Floats exp_nonpositive(const Floats& x) {
  const Floats n = nearest_ln2_multiple(x);
  return Floats::blendv(exp_reduced(minus_n_ln2(x, n), n), Floats(0.f), x < Floats(kExpMinArg));
}

// exp(a + b) for a <= 0 and small |b|, without rounding a + b: the reduction is exact for
// a, and b joins the reduced argument (erfc's exp(-z^2 + q) keeps its accuracy this way).
inline Floats exp_sum(const Floats& a, const Floats& b) {
  const Floats sum = a + b;
  const Floats n = nearest_ln2_multiple(at::vec::clamp_min(sum, Floats(kExpMinArg)));
  const Floats r = minus_n_ln2(a, n) + b;
  return Floats::blendv(exp_reduced(r, n), Floats(0.f), sum < Floats(kExpMinArg));
}

// tanh: odd Taylor series through x^19 for |x| < 0.625 (truncation < 1e-8 relative), else
// sign(x) * (1 - 2/(exp(2|x|) + 1)), which loses at most one bit to the subtraction there.
inline Floats tanh(const Floats& x) {
  const Floats a = x.abs();
  const Floats z = x * x;
  const Floats p = horner(z, {-2.3912911424355248e-4f, 5.90027440945586e-4f,
                              -1.4558343870513183e-3f, 3.592128036572481e-3f,
                              -8.863235529902197e-3f, 2.1869488536155203e-2f,
                              -5.396825396825397e-2f, 0.13333333333333333f,
                              -0.3333333333333333f});
  const Floats series = x * at::vec::fmadd(z, p, Floats(1.f));  // keeps tanh(-0) = -0
  const Floats large = Floats(1.f) - Floats(2.f) / (exp(a + a) + Floats(1.f));
  const Floats signed_large = Floats::blendv(large, large.neg(), x < Floats(0.f));
  return Floats::blendv(signed_large, series, a < Floats(0.625f));
}

// erfc: for z = |x|, t = 1/(1 + z/2), erfc(z) = t*exp(-z^2 + q(t)) with the Chebyshev fit
// q of Numerical Recipes' erfcc (fractional error < 1.2e-7 for all z), z^2 carried exactly
// (its rounding error joins q); erfc(x) = 2 - erfc(-x) for x < 0.
inline Floats erfc(const Floats& x) {
  const Floats z = x.abs();
  const Floats t = Floats(1.f) / at::vec::fmadd(Floats(0.5f), z, Floats(1.f));
  const Floats q = horner(t, {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                              -0.18628806f, 0.09678418f, 0.37409196f, 1.00002368f,
                              -1.26551223f});
  const Floats z2 = z * z;
  // z*z - z2, exactly (0 where z2 is infinite: inf - inf would make erfc(+-inf) NaN)
  const Floats z2_error =
      Floats::blendv(at::vec::fmsub(z, z, z2), Floats(0.f), z2 == Floats(std::numeric_limits<float>::infinity()));
  const Floats tail = t * exp_sum(z2.neg(), q - z2_error);
  return Floats::blendv(tail, Floats(2.f) - tail, x < Floats(0.f));
}

// log1p(y) = log(u) - ((u - 1) - y)/u with u = 1 + y (the quotient restores what rounding
// 1 + y lost), log(u) from u = m*2^e, m in [sqrt(1/2), sqrt(2)): log(m) by Cephes' logf
// polynomial in m - 1, plus e*ln 2 in two parts. u = 0, inf, NaN and u < 0 by blends.
inline Floats log1p(const Floats& y) {
  const Floats u = y + Floats(1.f);
  const Ints bits = at::vec::cast<int32_t>(u);
  Floats e = at::vec::convert_to_fp_of_same_size<float>((bits >> Ints(23)) - Ints(126));
  Floats m = at::vec::cast<float>((bits & Ints(static_cast<int32_t>(0x807FFFFFu))) | Ints(0x3F000000));  // [0.5, 1)
  const Floats low = m < Floats(0.707106781186547524f);
  e = e - (low & Floats(1.f));
  m = m + (low & m) - Floats(1.f);  // m - 1 in [sqrt(1/2) - 1, sqrt(2) - 1)
  const Floats z = m * m;
  const Floats p = horner(m, {7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f,
                              -1.2420140846e-1f, 1.4249322787e-1f, -1.6668057665e-1f,
                              2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f});
  Floats r = m * z * p;
  r = at::vec::fmadd(e, Floats(kLn2Lo), r);
  r = at::vec::fmadd(z, Floats(-0.5f), r);
  const Floats log_u = at::vec::fmadd(e, Floats(kLn2Hi), m + r);
  const Floats via_log = log_u - ((u - Floats(1.f)) - y) / u;
  // -0.5 <= y <= 1 (the exp(-|x|) of softplus and logsigmoid): log1p(y) = 2*atanh(s),
  // s = y/(2 + y), |s| <= 1/3, by its odd series through s^15; y itself never rounds.
  const Floats sv = y / (y + Floats(2.f));
  const Floats s2 = sv * sv;
  const Floats a =
      horner(s2, {2.f / 15.f, 2.f / 13.f, 2.f / 11.f, 2.f / 9.f, 2.f / 7.f, 2.f / 5.f, 2.f / 3.f});
  const Floats via_series = at::vec::fmadd(sv * s2, a, sv + sv);
  const Floats result = Floats::blendv(via_log, via_series, (y >= Floats(-0.5f)) & (y <= Floats(1.f)));
  const Floats kInf(std::numeric_limits<float>::infinity());
  Floats special = Floats::blendv(Floats(std::numeric_limits<float>::quiet_NaN()), u, u == kInf);
  special = Floats::blendv(special, kInf.neg(), u == Floats(0.f));
  return Floats::blendv(special, result, (u > Floats(0.f)) & (u < kInf));
}

}  // namespace vec_float_math
}  // namespace fusedact
