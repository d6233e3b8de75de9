// The math of every fusedact activation, and nothing else.
//
// Torch-free and `__host__ __device__`: the CPU kernels, the CUDA kernels and the C++
// tests all call these functors, so each formula is written exactly once. `T` is the
// op-math type: float for float/half/bfloat16 storage, double for double. Formulas use
// only the primitives of Math<T> (below), so the op layer can also evaluate them on
// at::Tensor, which autograd differentiates to any order (derivatives above the second).
//
// Each activation functor has forward(x) = f(x), d1(x) = f'(x) and d2(x) = f''(x) (the
// last one serves double backward), and may have backward(dy, x) where torch's chain rule
// is not dy * f'(x) (see chain_rule below). forward and d1 use torch's own expressions
// (its CUDA kernel is the reference), so outputs and gradients round like torch's and
// agree at NaN, ±inf, kinks and underflow; Mish uses the one-exp form of the design,
// checked against torch the same way. d2, which torch has no kernel for, avoids the
// cancellations of 1 - tanh^2 and 1 - sigmoid.
//
// Below the activations, the "mode" functors turn one activation into the elementwise
// maps the generic kernels run: forward, backward and double backward, for the unary and
// the gated shape class. A mode functor maps kInputs op-math values to kOutputs values;
// kMultiRow says whether its launches can have several rows.
#pragma once

#include <cmath>
#include <type_traits>
#include <utility>

#if defined(__CUDACC__)
#define FUSEDACT_HD __host__ __device__ __forceinline__
#else
#define FUSEDACT_HD inline
#endif
// FUSEDACT_HD, inlined on the host too whatever GCC's size heuristics say: for the members
// that GCC otherwise called out of line from the SIMD loops (a call per vector).
#if defined(__CUDACC__) || !defined(__GNUC__)
#define FUSEDACT_HD_INLINE FUSEDACT_HD
#else
#define FUSEDACT_HD_INLINE inline __attribute__((always_inline))
#endif

namespace fusedact {

// How torch checks a scalar parameter against the input's dtype before it runs (an overflow
// raises): converted to the op-math type (float for the half types), to the dtype itself,
// or to the dtype with infinity rejected too (softshrink's lambd). Activations with such
// parameters list them in check_parameters(check), which the op layer calls (host only).
enum class ParameterRange { kOpMath, kDtype, kDtypeFinite };

namespace constants {
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2*pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluTanhCubic = 0.044715;
// Above this, tanh(softplus(x)) and sigmoid(x) round to 1 in float and in double.
constexpr double kMishSaturation = 20.0;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kQuickGeluBeta = 1.702;
}  // namespace constants

// The primitives every formula is written in. Specialized here for float and double;
// other evaluation types (at::Tensor) specialize it where they are defined.
template <class T>
struct Math;

// Compound primitives, written once in the basic ones. Each Math offers them as members:
// the generic ones call these in its own type; float evaluates them in double on the host
// (CompoundType) and the float SIMD vectors in double-float arithmetic (vec_float_math.h),
// so their result rounds about once, where these formulas in float round several times.
template <class T, class M = Math<T>>
struct Compound {
  // a + log1p(exp(z)) for z <= 0 (exp(z) <= 1: no overflow): the softplus family's tail.
  FUSEDACT_HD static T add_log1p_exp(T a, T z) { return a + M::log1p(M::exp_nonpositive(z)); }
  // tanh(softplus(x)) = n/(n + 2) with n = e^x (e^x + 2) (one exp), where e^x is finite.
  FUSEDACT_HD static T tanh_softplus(T x) {
    const T e = M::exp(x);
    const T n = e * (e + M::c(2));
    return n / (n + M::c(2));
  }
  // Phi(x) = erfc(-x/sqrt2)/2, the standard normal's cdf (gelu's factor): no cancellation in
  // the left tail, as 1 + erf would have.
  FUSEDACT_HD static T normal_cdf(T x) {
    return M::c(0.5) * M::erfc(x * M::c(-constants::kSqrt1_2));
  }
  // Phi(x) + x*phi(x), phi the standard normal's pdf (gelu's derivative). The two terms
  // cancel near its zero at x = -0.7518, where the float SIMD vectors use a Taylor series.
  FUSEDACT_HD static T cdf_plus_x_pdf(T x) {
    const T pdf = M::c(constants::kInvSqrt2Pi) * M::exp_nonpositive(M::c(-0.5) * x * x);
    return M::normal_cdf(x) + x * pdf;
  }
  // The tanh form's derivative d/dx [x * sigmoid(2u)] (Gelu::tanh_slope, defined with Gelu).
  // Its terms cancel near its zero at x = -0.7525, as cdf_plus_x_pdf's do.
  FUSEDACT_HD static T tanh_gelu_slope(T x);
};
template <class T>
struct CompoundType {
  using type = T;
};
#if !defined(__CUDA_ARCH__)
template <>
struct CompoundType<float> {  // host only: the CUDA kernels keep their math in float
  using type = double;
};
#endif

// The compound primitives as members of a Math: Compound's formulas evaluated in W (by
// default CompoundType's: double for float on the host) and rounded back to T once.
template <class T, class W = typename CompoundType<T>::type>
struct CompoundMembers {
  FUSEDACT_HD static T add_log1p_exp(T a, T z) {
    return T(Compound<W>::add_log1p_exp(W(a), W(z)));
  }
  FUSEDACT_HD static T tanh_softplus(T x) { return T(Compound<W>::tanh_softplus(W(x))); }
  FUSEDACT_HD static T normal_cdf(T x) { return T(Compound<W>::normal_cdf(W(x))); }
  FUSEDACT_HD static T cdf_plus_x_pdf(T x) { return T(Compound<W>::cdf_plus_x_pdf(W(x))); }
  FUSEDACT_HD static T tanh_gelu_slope(T x) { return T(Compound<W>::tanh_gelu_slope(W(x))); }
  // The same, where the caller can evaluate the formula in T sharing its own s (formula():
  // Gelu::tanh_slope_of): that value when W is T, else recomputed in W.
  template <class Formula>
  FUSEDACT_HD static T tanh_gelu_slope(T x, const Formula& formula) {
    if constexpr (std::is_same_v<T, W>) {
      return formula();
    } else {
      return tanh_gelu_slope(x);
    }
  }
};

template <class T>
struct ScalarMath : CompoundMembers<T> {
  FUSEDACT_HD static constexpr T c(double v) { return T(v); }
  FUSEDACT_HD static T exp(T x) { return std::exp(x); }
  // exp where x <= 0 or NaN; vector types may skip exp's overflow handling.
  FUSEDACT_HD static T exp_nonpositive(T x) { return std::exp(x); }
  FUSEDACT_HD static T expm1(T x) { return std::expm1(x); }
  FUSEDACT_HD static T log1p(T x) { return std::log1p(x); }
  FUSEDACT_HD static T log(T x) { return std::log(x); }
  FUSEDACT_HD static T fma(T a, T b, T c) { return std::fma(a, b, c); }  // a*b + c, rounded once
  // a/b for the constant b (3 or 6), rounded as the division: the float SIMD vectors
  // multiply by 1/b and correct the product, where a division would cost most of the op.
  FUSEDACT_HD static T divide(T a, double b) { return a / T(b); }
  FUSEDACT_HD static T erfc(T x) { return std::erfc(x); }
  FUSEDACT_HD static T tanh(T x) { return std::tanh(x); }
  FUSEDACT_HD static T abs(T x) { return std::fabs(x); }
  FUSEDACT_HD static T zero_like(T) { return T(0); }
  FUSEDACT_HD static T full_like(T, double v) { return T(v); }
  FUSEDACT_HD static T select(bool condition, T if_true, T if_false) {
    return condition ? if_true : if_false;
  }
};
template <>
struct Math<float> : ScalarMath<float> {};
template <>
struct Math<double> : ScalarMath<double> {};
#ifndef __CUDACC__
template <>
struct Math<long double> : ScalarMath<long double> {};  // host-side references in tests
#endif

// Integer inputs (relu, relu6, hardtanh, threshold accept them, as torch): constants convert
// by truncation toward zero, then wrap into unsigned types (threshold value -2 is 254 in uint8).
template <class T>
struct IntegerMath : ScalarMath<T> {
  FUSEDACT_HD static constexpr T c(double v) { return T(static_cast<long long>(v)); }
  FUSEDACT_HD static T full_like(T, double v) { return c(v); }
};
template <>
struct Math<unsigned char> : IntegerMath<unsigned char> {};
template <>
struct Math<signed char> : IntegerMath<signed char> {};
template <>
struct Math<short> : IntegerMath<short> {};
template <>
struct Math<int> : IntegerMath<int> {};
template <>
struct Math<long> : IntegerMath<long> {};
template <>
struct Math<long long> : IntegerMath<long long> {};

// ---------------------------------------------------------------------------------------
// Activations.
// ---------------------------------------------------------------------------------------

// t = tanh(u) and sech2 = 1 - t^2, the latter as 4e/(1+e)^2 with e = exp(-2|u|): the
// subtraction 1 - t^2 cancels for large |u| (a few % off in float at |x| ~ 4.6, which put
// float32 double backward past tolerance). Exactly 0 where 1 - t*t is (|t| == 1).
template <class T>
FUSEDACT_HD void tanh_sech2(T u, T& t, T& sech2) {
  using M = Math<T>;
  t = M::tanh(u);
  const T e = M::exp_nonpositive(M::c(-2) * M::abs(u));
  sech2 = M::select(M::abs(t) == M::c(1), M::c(0), M::c(4) * e / ((M::c(1) + e) * (M::c(1) + e)));
}


// x is neither infinite nor NaN (scalar bool or SIMD mask). The saturation guards below use
// it: at x = +-inf torch's derivatives are NaN (inf * 0), and so are ours.
template <class T>
FUSEDACT_HD auto is_finite(T x) {
  return (x - x) == Math<T>::c(0);
}

// s = sigmoid(v) and its complement 1 - s, both without cancellation or overflow: with
// e = exp(-|v|), the pair is 1/(1+e) and e/(1+e), in the order the sign of v decides.
template <class T>
FUSEDACT_HD void sigmoid_pair(T v, T& s, T& one_minus_s) {
  using M = Math<T>;
  const T e = M::exp_nonpositive(-M::abs(v));
  const T near_one = M::c(1) / (M::c(1) + e), near_zero = e * near_one;
  const auto positive = v >= M::c(0);
  s = M::select(positive, near_one, near_zero);
  one_minus_s = M::select(positive, near_zero, near_one);
}

// gelu, exact: f = x*Phi(x);  f' = Phi(x) + x*phi(x);  f'' = phi(x)*(2 - x^2), with
//              Phi(x) = erfc(-x/sqrt2)/2 (as 1 + erf(x/sqrt2) it cancels for x < 0).
// gelu, tanh:  f = x/2*(1+tanh(u)), u = k*(x + c*x^3), evaluated as x*s with s = sigmoid(2u)
//              (1 + tanh(u) = 2s and 1 - tanh(u)^2 = 4s(1-s) hold exactly; this form needs one
//              exp and does not cancel in the left tail as 1 + tanh(u) and 1 - tanh^2 do):
//              f' = s*(1 + 2x(1-s)*u');  f'' = 4s(1-s)*(u' + x/2*u'' - x*(2s-1)*u'^2).
struct Gelu {
  bool tanh_approx = false;

  // u = k*(x + c*x^3) and its first two derivatives; s = sigmoid(2u) and 1 - s.
  template <class T>
  FUSEDACT_HD static void inner(T x, T& du, T& ddu, T& s, T& one_minus_s) {
    using M = Math<T>;
    using namespace constants;
    const T u = M::c(kSqrt2OverPi) * (x + M::c(kGeluTanhCubic) * x * x * x);
    du = M::c(kSqrt2OverPi) * (M::c(1) + M::c(3 * kGeluTanhCubic) * x * x);
    ddu = M::c(kSqrt2OverPi * 6 * kGeluTanhCubic) * x;
    sigmoid_pair(M::c(2) * u, s, one_minus_s);
  }

  template <class T>
  FUSEDACT_HD_INLINE T forward(T x) const {
    using M = Math<T>;
    if (tanh_approx) {
      T du, ddu, s, one_minus_s;
      inner(x, du, ddu, s, one_minus_s);
      return x * s;
    }
    return x * M::normal_cdf(x);
  }

  // The tanh form's f' (Compound::tanh_gelu_slope) from inner's values. Saturated (s or
  // 1 - s is 0), x*du may be infinite: f' is 1, or -0 (the exact value is a tiny negative
  // number).
  template <class T>
  FUSEDACT_HD static T tanh_slope_of(T x, T du, T s, T one_minus_s) {
    using M = Math<T>;
    const auto finite = is_finite(x);
    const T slope =
        M::select((one_minus_s == M::c(0)) & finite, M::c(0), M::c(2) * x * one_minus_s * du);
    return M::select((s == M::c(0)) & finite, M::c(-0.0), s * (M::c(1) + slope));
  }
  template <class T>
  FUSEDACT_HD static T tanh_slope(T x) {
    T du, ddu, s, one_minus_s;
    inner(x, du, ddu, s, one_minus_s);
    return tanh_slope_of(x, du, s, one_minus_s);
  }

  template <class T>
  FUSEDACT_HD_INLINE T d1(T x) const {
    using M = Math<T>;
    return tanh_approx ? M::tanh_gelu_slope(x) : M::cdf_plus_x_pdf(x);
  }

  // f and f' together (GatedBackward). In the tanh form they share s = sigmoid(2u), one exp
  // and one division, which the compiler did not merge between forward and d1 (geglu's
  // backward cost their sum).
  template <class T>
  FUSEDACT_HD_INLINE void forward_and_d1(T x, T& f, T& f1) const {
    if (!tanh_approx) {
      f = forward(x);
      f1 = d1(x);
      return;
    }
    T du, ddu, s, one_minus_s;
    inner(x, du, ddu, s, one_minus_s);
    f = x * s;
    f1 = Math<T>::tanh_gelu_slope(x, [&] { return tanh_slope_of(x, du, s, one_minus_s); });
  }

  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    if (tanh_approx) {
      T du, ddu, s, one_minus_s;
      inner(x, du, ddu, s, one_minus_s);
      const T sc = s * one_minus_s;  // 0 where saturated, where the bracket may be infinite
      return M::select((sc == M::c(0)) & is_finite(x), M::c(0),
                       M::c(4) * sc * (du + M::c(0.5) * x * ddu - x * (s - one_minus_s) * du * du));
    }
    const T pdf = M::c(constants::kInvSqrt2Pi) * M::exp_nonpositive(M::c(-0.5) * x * x);
    return pdf * (M::c(2) - x * x);
  }
};

template <class T, class M>
FUSEDACT_HD T Compound<T, M>::tanh_gelu_slope(T x) {
  return Gelu::tanh_slope(x);
}

// sigmoid: s = 1/(1+e^-x);  s' = s*(1-s);  s'' = s*(1-s)*(1-2s). Backward from the
// output y = s, as torch's sigmoid_backward: f' = y*(1-y), d(f')/dy = 1 - 2y.
struct Sigmoid {
  static constexpr bool kSavesOutput = true;
  static constexpr bool kPromotesIntegers = true, kPromotesBool = true, kComplex = true;
  template <class T>
  FUSEDACT_HD T d1_from_output(T y) const {
    return y * (Math<T>::c(1) - y);
  }
  template <class T>
  FUSEDACT_HD T d2_from_output(T y) const {
    return Math<T>::c(1) - Math<T>::c(2) * y;
  }
  // s = 1/(1+e), e = exp(-x), and c = 1 - s without cancellation: 1 - s where s < 1/2,
  // else e/(1+e) as e*s (a product, where a second division cost most of silu's backward),
  // and exactly 0 where 1 - s rounds to 0 (s == 1).
  template <class T>
  FUSEDACT_HD static void parts(T x, T& s, T& one_minus_s) {
    using M = Math<T>;
    const T e = M::exp(-x);
    s = M::c(1) / (M::c(1) + e);
    one_minus_s = M::select(x < M::c(0), M::c(1) - s,
                            M::select(s == M::c(1), M::c(0), e * s));
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::c(1) / (M::c(1) + M::exp(-x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T s = forward(x);
    return s * (M::c(1) - s);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    T s, c;
    parts(x, s, c);
    return s * c * (c - s);
  }
};

// silu: f = x*s(x) (as x/(1+e^-x), torch's form);  f' = s*(1 + x*(1-s));
//       f'' = s*(1-s)*(2 + x*(1-2s)).
struct Silu {
  static constexpr bool kComplex = true, kComplexNoGrad = true;  // torch: no complex autograd
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return x / (M::c(1) + M::exp(-x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T s = Sigmoid{}.forward(x);
    return s * (M::c(1) + x * (M::c(1) - s));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    T s, c;
    Sigmoid::parts(x, s, c);
    return s * c * (M::c(2) + x * (c - s));
  }
};

// mish: f = x*m, m = tanh(softplus(x)) = n/(n+2) with n = e^x*(e^x+2) (one exp);
//       f' = m + x*s*(1-m^2);  f'' = s*(1-m^2)*(2 + x*((1-s) - 2*m*s)), s = sigmoid(x).
struct Mish {
  // m = tanh(softplus(x)), 1 - m^2 = 4(n+1)/(n+2)^2, s = sigmoid(x) and 1 - s, sharing
  // one exp and free of cancellation. From kMishSaturation on, m = s = 1 (exp is taken of
  // 0 there, so no lane overflows).
  template <class T>
  FUSEDACT_HD static void parts(T x, T& m, T& one_minus_m2, T& s, T& one_minus_s) {
    using M = Math<T>;
    const auto saturated = x >= M::c(constants::kMishSaturation);
    const T e = M::exp(M::select(saturated, M::c(0), x));
    const T n = e * (e + M::c(2));
    m = M::select(saturated, M::c(1), n / (n + M::c(2)));
    one_minus_m2 =
        M::select(saturated, M::c(0), M::c(4) * (n + M::c(1)) / ((n + M::c(2)) * (n + M::c(2))));
    s = M::select(saturated, M::c(1), e / (e + M::c(1)));
    one_minus_s = M::select(saturated, M::c(0), M::c(1) / (e + M::c(1)));
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {  // m by its primitive, which rounds once
    using M = Math<T>;
    const auto saturated = x >= M::c(constants::kMishSaturation);
    return x * M::select(saturated, M::c(1), M::tanh_softplus(M::select(saturated, M::c(0), x)));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    T m, m2c, s, sc;
    parts(x, m, m2c, s, sc);
    return m + x * s * m2c;
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    T m, m2c, s, sc;
    parts(x, m, m2c, s, sc);
    return s * m2c * (M::c(2) + x * (sc - M::c(2) * m * s));
  }
};

// relu: f = max(x, 0) with relu(NaN) = NaN and relu(-0.0) = +0.0 (torch's clamp_min);
//       f' = 0 for x <= 0, else 1 (so f'(0) = 0 and f'(NaN) = 1, as torch's threshold_backward);
//       f'' = 0.
struct Relu {
  static constexpr bool kIntegers = true;
  FUSEDACT_HD bool negative_limits() const { return false; }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0), M::c(0), x);  // NaN fails the test and passes through
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0), M::c(0), M::c(1));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    return Math<T>::zero_like(x);  // 0 at NaN and inf too
  }
  // torch's threshold_backward: 0 where x <= 0 whatever dy is (NaN and inf included).
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0), M::c(0), dy);
  }
  // Backward from the output, as torch's relu: y > 0 exactly where x > 0 (and y is NaN
  // where x is), so the same expressions apply to y.
  static constexpr bool kSavesOutput = true;
  template <class T>
  FUSEDACT_HD T d1_from_output(T y) const {
    return d1(y);
  }
  template <class T>
  FUSEDACT_HD T d2_from_output(T y) const {
    return d2(y);
  }
  template <class T>
  FUSEDACT_HD T backward_from_output(T dy, T y) const {
    return backward(dy, y);
  }
};

// tanh: f = t;  f' = 1 - t^2;  f'' = -2t*(1 - t^2). Backward from the output y = t, as
// torch's tanh_backward: f' = 1 - y^2, d(f')/dy = -2y.
struct Tanh {
  static constexpr bool kSavesOutput = true;
  static constexpr bool kPromotesIntegers = true, kPromotesBool = true, kComplex = true;
  template <class T>
  FUSEDACT_HD T d1_from_output(T y) const {
    return Math<T>::c(1) - y * y;
  }
  template <class T>
  FUSEDACT_HD T d2_from_output(T y) const {
    return Math<T>::c(-2) * y;
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return Math<T>::tanh(x);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T t = M::tanh(x);
    return M::c(1) - t * t;
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    T t, sech2;
    tanh_sech2(x, t, sech2);
    return M::c(-2) * t * sech2;
  }
};

// swish: f = x*s(b*x) (quick_gelu is b = 1.702);  f' = s + b*x*s*(1-s);
//        f'' = b*s*(1-s)*(2 + b*x*(1-2s)), s = sigmoid(b*x).
struct Swish {
  double beta = 1.0;
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return x * Sigmoid{}.forward(Math<T>::c(beta) * x);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    return d1_at(x, Math<T>::c(beta));
  }
  // f' = s*(1 + b*x*(1-s)), also where b*x overflows (x finite): b*x*(1-s) is 0 where 1 - s
  // is, and f' is -0 where s is 0 (b*x very negative; the exact value is tiny, negative).
  template <class T, class B>
  FUSEDACT_HD static T d1_at(T x, B b) {
    using M = Math<T>;
    const T bx = b * x;
    T s, c;
    Sigmoid::parts(bx, s, c);
    const auto finite = is_finite(x);
    const T bxc = M::select((c == M::c(0)) & finite, M::c(0), bx * c);
    return M::select((s == M::c(0)) & finite, M::c(-0.0), s * (M::c(1) + bxc));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    const auto b = M::c(beta);
    T s, c;
    Sigmoid::parts(T(b * x), s, c);
    const T sc = s * c;  // 0 where saturated, where b*x may be infinite
    return M::select((sc == M::c(0)) & is_finite(x), M::c(0),
                     b * sc * (M::c(2) + b * x * (c - s)));
  }
};

// elu family (torch's elu kernel): f = x <= 0 ? alpha*scale*expm1(input_scale*x) : scale*x;
// f' = x <= 0 ? input_scale*alpha*scale*exp(input_scale*x) : scale (so elu'(0) = alpha);
// f'' = x <= 0 ? input_scale^2*alpha*scale*exp(input_scale*x) : 0.
// elu: (alpha, 1, 1); selu: (kSeluAlpha, kSeluScale, 1); celu: (alpha, 1, 1/alpha).
struct Elu {
  double alpha = 1.0, scale = 1.0, input_scale = 1.0;
  template <class Check>
  void check_parameters(const Check& check) const {
    check("alpha", alpha, ParameterRange::kOpMath);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0), M::expm1(x * M::c(input_scale)) * M::c(alpha * scale),
                     x * M::c(scale));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0),
                     M::c(input_scale * alpha * scale) * M::exp(x * M::c(input_scale)),
                     M::full_like(x, scale));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    return M::select(x <= M::c(0),
                     M::c(input_scale * input_scale * alpha * scale) *
                         M::exp(x * M::c(input_scale)),
                     M::zero_like(x));
  }
  // From the output (the in-place ops' backward, as torch's elu_backward on the result):
  // with alpha >= 0, y <= 0 exactly where x <= 0, and there f' = input_scale*(y + alpha*scale).
  FUSEDACT_HD bool output_determines_derivative() const { return alpha >= 0; }
  template <class T>
  FUSEDACT_HD T d1_from_output(T y) const {
    using M = Math<T>;
    return M::select(y <= M::c(0), M::c(input_scale) * (y + M::c(alpha * scale)),
                     M::full_like(y, scale));
  }
  template <class T>
  FUSEDACT_HD T d2_from_output(T y) const {
    using M = Math<T>;
    return M::select(y <= M::c(0), M::full_like(y, input_scale), M::zero_like(y));
  }
};

// leaky_relu: f = x > 0 ? x : slope*x;  f' = x > 0 ? 1 : slope (so f'(0) = slope);  f'' = 0.
struct LeakyRelu {
  double negative_slope = 0.01;
  template <class Check>
  void check_parameters(const Check& check) const {
    check("negative_slope", negative_slope, ParameterRange::kOpMath);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::select(x > M::c(0), x, x * M::c(negative_slope));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(x > M::c(0), M::full_like(x, 1), M::full_like(x, negative_slope));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    return Math<T>::zero_like(x);
  }
  // From the output (the in-place op's backward, as torch's): with a slope >= 0, y > 0
  // exactly where x > 0, so the same expressions apply to y.
  FUSEDACT_HD bool output_determines_derivative() const { return negative_slope >= 0; }
  template <class T>
  FUSEDACT_HD T d1_from_output(T y) const {
    return d1(y);
  }
  template <class T>
  FUSEDACT_HD T d2_from_output(T y) const {
    return d2(y);
  }
};

// hardtanh (relu6 is [0, 6]): f = x <= lo ? lo : x >= hi ? hi : x, NaN passing through (torch's
// CUDA clamp, fmax/fmin: a tie such as relu6(-0.0) gives the bound, +0.0);
// f' = (x <= lo || x >= hi) ? 0 : 1 (0 at both edges); f'' = 0.
struct Hardtanh {
  double min_val = -1.0, max_val = 1.0;
  static constexpr bool kIntegers = true;
  FUSEDACT_HD bool negative_limits() const { return min_val < 0 || max_val < 0; }
  template <class Check>
  void check_parameters(const Check& check) const {
    check("min_val", min_val, ParameterRange::kDtype);
    check("max_val", max_val, ParameterRange::kDtype);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    // torch's clamp: a NaN bound makes every output NaN (integer input rejects NaN bounds).
    if (min_val != min_val || max_val != max_val) return M::full_like(x, min_val + max_val);
    return M::select(x <= M::c(min_val), M::full_like(x, min_val),
                     M::select(x >= M::c(max_val), M::full_like(x, max_val), x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(outside(x), M::zero_like(x), M::full_like(x, 1));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    return Math<T>::zero_like(x);
  }
  // torch's hardtanh_backward is a select: 0 outside whatever dy is.
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {
    return Math<T>::select(outside(x), Math<T>::zero_like(x), dy);
  }
  template <class T>
  FUSEDACT_HD auto outside(T x) const {
    using M = Math<T>;
    return (x <= M::c(min_val)) | (x >= M::c(max_val));
  }
};

// softplus: f = b*x > th ? x : log1p(exp(b*x))/b;  f' = b*x > th ? 1 : s(b*x);
//           f'' = b*x > th ? 0 : b*s*(1-s).
struct Softplus {
  double beta = 1.0, threshold = 20.0;
  template <class Check>
  void check_parameters(const Check& check) const {
    check("beta", beta, ParameterRange::kOpMath);
    check("threshold", threshold, ParameterRange::kOpMath);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {  // log1p(exp(bx)) as max(bx, 0) + log1p(exp(-|bx|))
    using M = Math<T>;
    const T bx = x * M::c(beta);
    const T positive_part = M::select(bx > M::c(0), bx, M::zero_like(x));
    return M::select(bx > M::c(threshold), x,
                     M::add_log1p_exp(positive_part, -M::abs(bx)) / M::c(beta));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T bx = x * M::c(beta), z = M::exp(bx);
    return M::select(bx > M::c(threshold), M::full_like(x, 1), z / (z + M::c(1)));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    const T bx = x * M::c(beta);
    T s, c;
    Sigmoid::parts(bx, s, c);
    return M::select(bx > M::c(threshold), M::zero_like(x), M::c(beta) * s * c);
  }
};

// hardsigmoid: f = min(max(x + 3, 0), 6)/6;  f' = 1/6 inside (-3, 3), else 0;  f'' = 0.
struct Hardsigmoid {
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return Math<T>::divide(Hardtanh{0.0, 6.0}.forward(x + Math<T>::c(3)), 6);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(inside(x), M::full_like(x, 1.0 / 6), M::zero_like(x));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    return Math<T>::zero_like(x);
  }
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {  // torch: a select, 0 outside (-3, 3), dy * (1/6)
    using M = Math<T>;
    return M::select(inside(x), dy * M::c(1.0 / 6), M::zero_like(x));
  }
  template <class T>
  FUSEDACT_HD static auto inside(T x) {
    using M = Math<T>;
    return (x > M::c(-3)) & (x < M::c(3));
  }
};

// hardswish: f = x*min(max(x + 3, 0), 6)/6;  f' = 0 up to -3, x/3 + 1/2 on (-3, 3), 1 from 3
// on (torch 2.11's CPU and CUDA kernels: f'(-3) = 0, f'(3) = 1);  f'' = 1/3 inside (-3, 3).
struct Hardswish {
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return Math<T>::divide(x * Hardtanh{0.0, 6.0}.forward(x + Math<T>::c(3)), 6);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    return backward(Math<T>::full_like(x, 1), x);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    return M::select(Hardsigmoid::inside(x), M::full_like(x, 1.0 / 3), M::zero_like(x));
  }
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {  // torch: a select, 0 up to -3
    using M = Math<T>;
    return M::select(x <= M::c(-3), M::zero_like(x),
                     M::select(x < M::c(3), dy * (M::divide(x, 3) + M::c(0.5)), dy));
  }
};

// softsign: f = x/(1 + |x|);  f' = 1/a - |x|/a^2 with a = 1 + |x| (torch's composite
// gradient, NaN at ±inf like torch's);  f'' = -2*sign(x)/a^3.
struct Softsign {
  static constexpr bool kPromotesIntegers = true, kPromotesBool = false, kComplex = true;
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return x / (M::abs(x) + M::c(1));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T a = M::abs(x) + M::c(1);
    return M::c(1) / a - M::abs(x) / (a * a);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    const T a = M::abs(x) + M::c(1);
    const T sign = M::select(x > M::c(0), M::full_like(x, 1),
                             M::select(x < M::c(0), M::full_like(x, -1), x * M::c(0)));
    return M::c(-2) * sign / (a * a * a);
  }
};

// logsigmoid: f = min(x, 0) - log1p(exp(-|x|));  f' = s(-x) (as torch: x < 0 ? 1 - z/(1+z)
// : z/(1+z), z = exp(-|x|));  f'' = -z/(1+z)^2.
struct Logsigmoid {
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;  // as 0 - (max(-x, 0) + log1p(exp(-|x|))): one rounding, and +0 as torch's
    const T negative_part = M::select(x < M::c(0), -x, M::zero_like(x));
    return M::c(0) - M::add_log1p_exp(negative_part, -M::abs(x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T z = M::exp_nonpositive(-M::abs(x)), q = z / (M::c(1) + z);
    return M::select(x < M::c(0), M::c(1) - q, q);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    const T z = M::exp_nonpositive(-M::abs(x));
    return -z / ((M::c(1) + z) * (M::c(1) + z));
  }
};

// tanhshrink: f = x - tanh(x);  f' = 1 - (1 - t^2) (torch's composite gradient);
//             f'' = 2t*(1 - t^2).
struct Tanhshrink {
  static constexpr bool kPromotesIntegers = true, kPromotesBool = false, kComplex = true;
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return x - Math<T>::tanh(x);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    const T t = M::tanh(x);
    return M::c(1) - (M::c(1) - t * t);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    T t, sech2;
    tanh_sech2(x, t, sech2);
    return M::c(2) * t * sech2;
  }
};

// Shared by the shrinks and threshold: f' is 0 on a set and 1 elsewhere, torch's backward
// is a select (0 on the set whatever dy is), f'' = 0.
template <class Derived>
struct MaskedIdentityGrad {
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using M = Math<T>;
    return M::select(self().zero_grad(x), M::zero_like(x), M::full_like(x, 1));
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    return Math<T>::zero_like(x);
  }
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {
    return Math<T>::select(self().zero_grad(x), Math<T>::zero_like(x), dy);
  }
  FUSEDACT_HD const Derived& self() const { return static_cast<const Derived&>(*this); }
};

// The shrinks: f' = 0 on the closed interval [-lambd, lambd], 1 outside.
template <class Derived>
struct Shrink : MaskedIdentityGrad<Derived> {
  double lambd;
  explicit FUSEDACT_HD Shrink(double lambd) : lambd(lambd) {}
  template <class T>
  FUSEDACT_HD auto zero_grad(T x) const {
    using M = Math<T>;
    return (x >= M::c(-lambd)) & (x <= M::c(lambd));
  }
};

// hardshrink: f = 0 on [-lambd, lambd], else x.
struct Hardshrink : Shrink<Hardshrink> {
  using Shrink<Hardshrink>::Shrink;
  template <class Check>
  void check_parameters(const Check& check) const {
    check("lambd", lambd, ParameterRange::kOpMath);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return Math<T>::select(zero_grad(x), Math<T>::zero_like(x), x);
  }
};

// softshrink: f = x - lambd above lambd, x + lambd below -lambd, NaN kept, else +0.0 (torch's
// CUDA kernel; its CPU scalar loop gives -0.0 for negative x in the middle).
struct Softshrink : Shrink<Softshrink> {
  using Shrink<Softshrink>::Shrink;
  template <class Check>
  void check_parameters(const Check& check) const {
    check("lambd", lambd, ParameterRange::kDtypeFinite);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::select(x != x, x,
                     M::select(x > M::c(lambd), x - M::c(lambd),
                               M::select(x < M::c(-lambd), x + M::c(lambd), M::zero_like(x))));
  }
};

// threshold: f = x <= threshold ? value : x;  f' = 0 there, else 1.
struct Threshold : MaskedIdentityGrad<Threshold> {
  double threshold, value;
  static constexpr bool kIntegers = true;
  FUSEDACT_HD bool negative_limits() const { return false; }  // torch wraps the value
  FUSEDACT_HD Threshold(double threshold, double value) : threshold(threshold), value(value) {}
  template <class Check>
  void check_parameters(const Check& check) const {
    check("threshold", threshold, ParameterRange::kOpMath);
    check("value", value, ParameterRange::kDtype);
  }
  template <class T>
  FUSEDACT_HD auto zero_grad(T x) const {
    return x <= Math<T>::c(threshold);
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using M = Math<T>;
    return M::select(zero_grad(x), M::full_like(x, value), x);
  }
};

// relu_squared: f = relu(x)^2;  f' = 2*relu(x) (0 for x <= 0, torch's relu select);
//               f'' = x > 0 ? 2 : 0.
struct ReluSquared {
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    const T r = Relu{}.forward(x);
    return r * r;
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    return Math<T>::c(2) * Relu{}.forward(x);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using M = Math<T>;
    return M::select(x > M::c(0), M::full_like(x, 2), M::zero_like(x));
  }
  template <class T>
  FUSEDACT_HD T backward(T dy, T x) const {
    return Relu{}.backward(dy * Math<T>::c(2) * Relu{}.forward(x), x);
  }
};

// prelu, an activation with a learned weight w (per channel or one for all):
// f = x > 0 ? x : w*x;  df/dx = x > 0 ? 1 : w (so f'(0) = w);  df/dw = x > 0 ? 0 : x.
// backward(dy, x, w) is torch's: selects, so dy on the other branch never leaks in.
struct Prelu {
  template <class T>
  FUSEDACT_HD T forward(T x, T w) const {
    return Math<T>::select(x > Math<T>::c(0), x, w * x);
  }
  template <class T>
  FUSEDACT_HD void backward(T dy, T x, T w, T& grad_input, T& grad_weight_term) const {
    using M = Math<T>;
    const auto positive = x > M::c(0);
    grad_input = M::select(positive, dy, w * dy);
    grad_weight_term = M::select(positive, M::zero_like(x), x * dy);
  }
};

// swish with a learned beta w (one, or per channel): f = x*s(w*x);
// df/dx = s + w*x*s*(1-s);  df/dw = x^2*s*(1-s), s = sigmoid(w*x).
// The weight gradient is a sum over many elements, which may cancel, so its terms are kept
// accurate where torch's composition is not: s*(1-s) where s rounds to 1 (torch's sigmoid
// backward gives 0 from |u| = 17 on, u = w*x), and the rounding error r of u taken into
// account, s*(1-s) at u + r being s*(1-s)*(1 + (1-2s)*r) (r alone puts |u| ulps into it).
struct LearnableSwish {
  template <class T>
  FUSEDACT_HD T forward(T x, T w) const {
    return x * Sigmoid{}.forward(T(w * x));
  }
  template <class T>
  FUSEDACT_HD void backward(T dy, T x, T w, T& grad_input, T& grad_weight_term) const {
    using M = Math<T>;
    const T u = w * x;
    const T u_error = M::select(is_finite(u), M::fma(w, x, -u), M::zero_like(u));
    T s, c;
    sigmoid_pair(u, s, c);
    grad_input = dy * Swish::d1_at(x, w);
    const T sc_rounded = s * c;
    const T sc = M::fma(sc_rounded * (c - s), u_error, sc_rounded);
    grad_weight_term = (dy * x) * (x * sc);  // not x*x: it may overflow where s*c is 0
  }
};

// Trait<Act>::value: Act's static constexpr bool `flag`, false where Act does not declare it.
#define FUSEDACT_FLAG_TRAIT(Trait, flag)                                        \
  template <class Act, class = void>                                            \
  struct Trait : std::false_type {};                                            \
  template <class Act>                                                          \
  struct Trait<Act, std::enable_if_t<Act::flag>> : std::true_type {};

// Activations that torch also runs on integer tensors declare kIntegers (and
// negative_limits(): whether a bound is negative, which torch rejects for uint8); only their
// forward (and in-place) kernels are built for integer types.
FUSEDACT_FLAG_TRAIT(AcceptsIntegers, kIntegers)

// Activations that torch also runs on complex tensors declare kComplex. The kernels are real;
// the op layer evaluates forward on complex tensors with ATen ops (Math<at::Tensor>), whose
// autograd gives torch's complex (conjugate) gradients.
FUSEDACT_FLAG_TRAIT(AcceptsComplex, kComplex)
// ...and kComplexNoGrad where torch refuses to differentiate it for complex input (silu).
FUSEDACT_FLAG_TRAIT(ComplexNoGrad, kComplexNoGrad)

// Activations whose scalar parameters torch range-checks against the input's dtype.
template <class Act, class = void>
struct ChecksParameters : std::false_type {};
template <class Act>
struct ChecksParameters<Act, std::void_t<decltype(std::declval<const Act&>().check_parameters(
                                 std::declval<void (*)(const char*, double, ParameterRange)>()))>>
    : std::true_type {};

// Unary ops that torch computes in the default float dtype for integer input declare
// kPromotesIntegers, and kPromotesBool where bool input is promoted too (torch's sigmoid and
// tanh; its softsign and tanhshrink reject bool).
FUSEDACT_FLAG_TRAIT(PromotesIntegers, kPromotesIntegers)

// Activations that can differentiate from the output y = f(x) define
// d1_from_output(y) = f'(x) and d2_from_output(y) = d(f'(x))/dy (and backward_from_output
// where their backward has select semantics). Those whose torch backward saves the output
// (tanh, sigmoid, relu) also declare kSavesOutput: their X_backward ops take the output.
// The others (leaky_relu, the elu family) use it only for the in-place op, whose input is
// gone, and say by output_determines_derivative() when that is possible.
template <class Act, class = void>
struct HasOutputDerivatives : std::false_type {};
template <class Act>
struct HasOutputDerivatives<Act, std::void_t<decltype(std::declval<const Act&>().d1_from_output(
                                     std::declval<float>()))>> : std::true_type {};

FUSEDACT_FLAG_TRAIT(SavesOutput, kSavesOutput)
#undef FUSEDACT_FLAG_TRAIT

template <class Act>
struct OutputDerivatives {
  Act act;
  template <class T>
  FUSEDACT_HD T d1(T y) const {
    return act.d1_from_output(y);
  }
  template <class T>
  FUSEDACT_HD T d2(T y) const {
    return act.d2_from_output(y);
  }
  template <class T, class A = Act>
  FUSEDACT_HD auto backward(T dy, T y) const
      -> decltype(std::declval<const A&>().backward_from_output(dy, y)) {
    return act.backward_from_output(dy, y);
  }
};

// What the unary X_backward ops differentiate with: the activation itself, or the adapter
// over its output where the activation saves the output.
template <class Act>
using UnaryDerivatives =
    std::conditional_t<SavesOutput<Act>::value, OutputDerivatives<Act>, Act>;

template <class Act>
FUSEDACT_HD UnaryDerivatives<Act> unary_derivatives(const Act& act) {
  if constexpr (SavesOutput<Act>::value) {
    return {act};
  } else {
    return act;
  }
}

// What the backward of an in-place op differentiates with: from the output where the
// activation can (torch saves the result of relu_, leaky_relu_ and the elu family), else
// from a saved copy of the input.
template <class Act>
using InplaceDerivatives =
    std::conditional_t<HasOutputDerivatives<Act>::value, OutputDerivatives<Act>, Act>;

// dy * f'(x) as torch's backward computes it: the activation's own backward(dy, x) where
// it has one, else the product.
template <class Act, class T, class = void>
struct HasBackward : std::false_type {};
template <class Act, class T>
struct HasBackward<Act, T,
                   std::void_t<decltype(std::declval<const Act&>().backward(std::declval<T>(),
                                                                          std::declval<T>()))>>
    : std::true_type {};

// Whether Act computes f and f' together (forward_and_d1), sharing their work.
template <class Act, class T, class = void>
struct HasForwardAndD1 : std::false_type {};
template <class Act, class T>
struct HasForwardAndD1<Act, T,
                       std::void_t<decltype(std::declval<const Act&>().forward_and_d1(
                           std::declval<T>(), std::declval<T&>(), std::declval<T&>()))>>
    : std::true_type {};

template <class Act, class T>
FUSEDACT_HD T chain_rule(const Act& act, T dy, T x) {
  if constexpr (HasBackward<Act, T>::value) {
    return act.backward(dy, x);
  } else {
    return dy * act.d1(x);
  }
}

// ---------------------------------------------------------------------------------------
// Modes: the elementwise maps of each shape class. Argument order = operand order of the
// matching op's schema.
// ---------------------------------------------------------------------------------------

// y = f(x).  in: [input]  out: [output]
template <class Act>
struct UnaryForward {
  static constexpr bool kMultiRow = false;  // always launched as one row
  static constexpr bool kIntegers = AcceptsIntegers<Act>::value;
  static constexpr int kInputs = 1, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    out[0] = act.forward(in[0]);
  }
};

// dx = dy*f'(x).  in: [grad_output, input]  out: [grad_input]
template <class Act>
struct UnaryBackward {
  static constexpr bool kMultiRow = false;  // always launched as one row
  static constexpr int kInputs = 2, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    out[0] = chain_rule(act, in[0], in[1]);
  }
};

// Gradients of dx = dy*f'(x) given ggx = d(loss)/d(dx):
//   d/d(dy) = ggx*f'(x);  d/dx = ggx*dy*f''(x).
// in: [grad_grad_input, grad_output, input]  out: [grad_grad_output, grad_input]
template <class Act>
struct UnaryDoubleBackward {
  static constexpr bool kMultiRow = false;  // always launched as one row
  static constexpr int kInputs = 3, kOutputs = 2;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    const T ggx = in[0], dy = in[1], x = in[2];
    out[0] = ggx * act.d1(x);
    out[1] = ggx * dy * act.d2(x);
  }
};

// out = f(gate)*up.  in: [gate, up]  out: [output]
template <class Act>
struct GatedForward {
  static constexpr bool kMultiRow = true;
  static constexpr int kInputs = 2, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    out[0] = act.forward(in[0]) * in[1];
  }
};

// d(gate) = dy*up*f'(gate);  d(up) = dy*f(gate).
// in: [grad_output, gate, up]  out: [grad_gate, grad_up]
template <class Act>
struct GatedBackward {
  static constexpr bool kMultiRow = true;
  static constexpr int kInputs = 3, kOutputs = 2;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    const T dy = in[0], gate = in[1], up = in[2];
    // torch's order: (dy*up) through f'
    if constexpr (HasForwardAndD1<Act, T>::value) {
      T f, f1;
      act.forward_and_d1(gate, f, f1);
      out[0] = (dy * up) * f1;
      out[1] = dy * f;
    } else {
      out[0] = chain_rule(act, dy * up, gate);
      out[1] = dy * act.forward(gate);
    }
  }
};

// Gradients of (d(gate), d(up)) above given gg = d(loss)/d(d(gate)), gu = d(loss)/d(d(up)):
//   d/d(dy)   = gg*up*f'(gate) + gu*f(gate)
//   d/d(gate) = gg*dy*up*f''(gate) + gu*dy*f'(gate)
//   d/d(up)   = gg*dy*f'(gate)
// in: [grad_grad_gate, grad_grad_up, grad_output, gate, up]
// out: [grad_grad_output, grad_gate, grad_up]
template <class Act>
struct GatedDoubleBackward {
  static constexpr bool kMultiRow = true;
  static constexpr int kInputs = 5, kOutputs = 3;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    const T gg = in[0], gu = in[1], dy = in[2], gate = in[3], up = in[4];
    const T f = act.forward(gate), f1 = act.d1(gate), f2 = act.d2(gate);
    out[0] = gg * up * f1 + gu * f;
    out[1] = gg * dy * up * f2 + gu * dy * f1;
    out[2] = gg * dy * f1;
  }
};

// y = f(x, w), with w broadcast to x's shape.  in: [input, weight]  out: [output]
template <class Act>
struct WeightedForward {
  static constexpr bool kMultiRow = true;  // the weight operand may repeat per row
  static constexpr int kInputs = 2, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    out[0] = act.forward(in[0], in[1]);
  }
};

// The gradients of y = f(x, w): dx, and the per-element term whose sum over each weight's
// elements is dw.  in: [grad_output, input, weight]  out: [grad_input, grad_weight_term]
template <class Act>
struct WeightedBackward {
  static constexpr bool kMultiRow = true;
  static constexpr int kInputs = 3, kOutputs = 2;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    act.backward(in[0], in[1], in[2], out[0], out[1]);
  }
};

// The input gradient alone, where the weight is not learned (rrelu's noise).
//   in: [grad_output, input, weight]  out: [grad_input]
template <class Act>
struct WeightedInputBackward {
  static constexpr bool kMultiRow = true;
  static constexpr int kInputs = 3, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    T unused_weight_term;  // computed, then dropped by the compiler
    act.backward(in[0], in[1], in[2], out[0], unused_weight_term);
  }
};

}  // namespace fusedact
