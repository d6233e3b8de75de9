// Tests of the torch-free math header fusedact/functors.h.
//
// Every forward is checked against an independent long-double formula, every d1 against
// central finite differences of that formula, every d2 against finite differences of d1,
// and the mode functors against their definitions and against finite differences of the
// mode they differentiate. The header is instantiated with T = float and T = double (the
// op-math types) and, for the finite-difference references only, with long double.
#include <fusedact/functors.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace {

using fusedact::Gelu;
using fusedact::Mish;
using fusedact::Relu;
using fusedact::Sigmoid;
using fusedact::Silu;

using LD = long double;

// ---------------------------------------------------------------------------------------
// Independent references, in long double (64-bit mantissa on x86-64: ~1e-19 relative,
// far below the double tolerances used here).
// ---------------------------------------------------------------------------------------

constexpr LD kPiL = 3.141592653589793238462643383279502884L;

// gelu(x) = x * Phi(x) = x/2 * erfc(-x/sqrt(2)); erfc has no cancellation for x < 0.
LD RefGelu(LD x) { return 0.5L * x * std::erfc(-x / std::sqrt(2.0L)); }
LD RefGeluTanh(LD x) {
  const LD u = std::sqrt(2.0L / kPiL) * (x + 0.044715L * x * x * x);
  return 0.5L * x * (1.0L + std::tanh(u));
}
LD RefSigmoid(LD x) { return 1.0L / (1.0L + std::exp(-x)); }
LD RefSilu(LD x) { return x / (1.0L + std::exp(-x)); }
// softplus via log1p(exp(x)): exact enough everywhere the long-double exp does not overflow
// (|x| < 11356), and tanh(inf) = 1 beyond that.
LD RefMish(LD x) { return x * std::tanh(std::log1p(std::exp(x))); }
LD RefRelu(LD x) { return x > 0.0L ? x : 0.0L; }

// One activation under test: the functor, its reference, the points where it is not
// smooth, and whether torch's formula for it computes 1 + erf / 1 + tanh (see ForwardTol).
template <class Act>
struct Case {
  std::string name;
  Act act;
  LD (*ref)(LD);
  std::vector<double> kinks;
  bool gelu_cancellation;
};

Case<Gelu> GeluCase() { return {"gelu", Gelu{false}, RefGelu, {}, true}; }
Case<Gelu> GeluTanhCase() { return {"gelu_tanh", Gelu{true}, RefGeluTanh, {}, true}; }
Case<Sigmoid> SigmoidCase() { return {"sigmoid", Sigmoid{}, RefSigmoid, {}, false}; }
Case<Silu> SiluCase() { return {"silu", Silu{}, RefSilu, {}, false}; }
Case<Mish> MishCase() { return {"mish", Mish{}, RefMish, {}, false}; }
Case<Relu> ReluCase() { return {"relu", Relu{}, RefRelu, {0.0}, false}; }

// Calls `fn(case)` for every activation (each has its own functor type).
template <class Fn>
void ForEachCase(Fn&& fn) {
  fn(GeluCase());
  fn(GeluTanhCase());
  fn(SigmoidCase());
  fn(SiluCase());
  fn(MishCase());
  fn(ReluCase());
}

// ---------------------------------------------------------------------------------------
// Points.
// ---------------------------------------------------------------------------------------

// [-30, 30]: an exact binary grid (hits 0 and the integers) plus an offset grid that
// hits no round number.
std::vector<double> CoreGrid() {
  std::vector<double> xs;
  for (int i = 0; i <= 960; ++i) xs.push_back(-30.0 + i * 0.0625);
  for (int i = 0; -29.989 + i * 0.173 <= 30.0; ++i) xs.push_back(-29.989 + i * 0.173);
  return xs;
}

// Core grid plus tails far into the saturated regions (float overflows x^3 at 1e30, exp at
// |x| > 88.7; double exp overflows at |x| > 709.8).
std::vector<double> ForwardGrid() {
  std::vector<double> xs = CoreGrid();
  for (double t : {35.0, 40.0, 50.0, 80.0, 88.5, 89.0, 100.0, 500.0, 720.0, 1e4, 1e15, 1e30}) {
    xs.push_back(t);
    xs.push_back(-t);
  }
  return xs;
}

// Derivative checks: the core grid and a moderate tail.
std::vector<double> DerivativeGrid() {
  std::vector<double> xs = CoreGrid();
  for (double t : {40.0, 50.0}) {
    xs.push_back(t);
    xs.push_back(-t);
  }
  return xs;
}

bool NearKink(double x, const std::vector<double>& kinks) {
  for (double k : kinks)
    if (std::fabs(x - k) < 1e-3) return true;
  return false;
}

// ---------------------------------------------------------------------------------------
// Tolerances.
// ---------------------------------------------------------------------------------------

// Forward, T = float or double, against the long-double reference:
//   |got - ref| <= rtol * |ref| + atol.
// rtol = 8 eps_T. Each forward is at most ~6 correctly rounded operations (each <= eps/2)
// plus one or two libm calls (glibc's erf/exp/tanh are within ~1 ulp), and none of them
// is ill-conditioned in relative terms except the one below, so the error is bounded by
// about 4-5 eps; 8 eps (float: 9.5e-7, double: 1.8e-15) leaves margin without admitting a
// wrong constant or formula (those show up at >= 1e-7 relative in double).
// GELU gets atol = 2 eps |x| as well: written for torch's form x/2 * (1 + erf(x/sqrt2))
// (resp. 1 + tanh(u)), whose sum cancels for x < 0. The header now evaluates
// x/2 * erfc(-x/sqrt2) and x*sigmoid(2u), which do not cancel, so this allowance is wider
// than the header needs (kept as it was; tightening it is a separate change). Every case gets atol = 1e-36 for results that underflow (exp
// overflowing in x/(1+exp(-x)) for x < -88.7 in float, where |ref| < 3e-37, and subnormal
// intermediates).
template <class T>
LD ForwardTol(LD ref, double x, bool gelu_cancellation) {
  const LD eps = std::numeric_limits<T>::epsilon();
  LD tol = 8 * eps * std::fabs(ref) + 1e-36L;
  if (gelu_cancellation) tol += 2 * eps * std::fabs(static_cast<LD>(x));
  return tol;
}

// Derivatives, against finite differences computed in long double:
//  - T = double: rtol 1e-7, atol 1e-9. The central difference with h = 1e-5 has a
//    truncation error of h^2/6 |f'''| ~ 2e-11 |f'''| and a rounding error of
//    ~1e-19 |f| / h <= 1e-12 on this grid; the functors' own rounding is ~1e-15. A wrong
//    term or constant is far above 1e-7.
//  - T = float: torch.testing's float32 defaults (rtol 1.3e-6, atol 1e-5), the tolerance
//    the fused kernels are held to. The derivative formulas (torch's) lose absolute
//    accuracy in float where 1 - t^2, 1 - m^2 or 1 - s cancel: up to ~6e-6 for the tanh
//    GELU's d2 near |x| = 5 (an ulp of t near 1 times |x t u'^2| ~ 50).
struct Tol {
  LD rtol, atol;
};
template <class T>
Tol DerivTol() {
  if constexpr (std::is_same_v<T, float>) {
    return {1.3e-6L, 1e-5L};
  } else {
    return {1e-7L, 1e-9L};
  }
}

constexpr LD kStep = 1e-5L;

// Central difference of f at x, in long double; divides by the actual spacing.
template <class F>
LD CentralDiff(F f, LD x) {
  const LD h = kStep * std::max<LD>(1.0L, std::fabs(x));
  const LD xp = x + h, xm = x - h;
  return (f(xp) - f(xm)) / (xp - xm);
}

// Counts failures and reports the first few, so a wrong formula yields a few lines, not
// thousands.
class FailureLog {
 public:
  explicit FailureLog(std::string what) : what_(std::move(what)) {}
  void Check(bool ok, double x, LD got, LD want, LD tol) {
    if (ok) return;
    if (++bad_ <= 5) {
      ADD_FAILURE() << what_ << " at x = " << x << ": got " << static_cast<double>(got)
                    << ", want " << static_cast<double>(want)
                    << ", |diff| = " << static_cast<double>(std::fabs(got - want))
                    << " > tol " << static_cast<double>(tol);
    }
  }
  ~FailureLog() { EXPECT_EQ(bad_, 0) << what_ << ": points out of tolerance"; }

 private:
  std::string what_;
  int bad_ = 0;
};

template <class T>
const char* TypeName() {
  return std::is_same_v<T, float> ? "float" : "double";
}

// ---------------------------------------------------------------------------------------
// Activations: forward, d1, d2.
// ---------------------------------------------------------------------------------------

template <class T>
struct ForwardCheck {
  template <class Act>
  void operator()(const Case<Act>& c) const {
    FailureLog log(c.name + "<" + TypeName<T>() + ">::forward");
    for (double xd : ForwardGrid()) {
      const T x = static_cast<T>(xd);
      const LD want = c.ref(static_cast<LD>(x));
      const LD got = c.act.forward(x);
      const LD tol = ForwardTol<T>(want, x, c.gelu_cancellation);
      log.Check(std::fabs(got - want) <= tol, x, got, want, tol);
    }
  }
};

TEST(Functors, ForwardMatchesReferenceDouble) { ForEachCase(ForwardCheck<double>{}); }
TEST(Functors, ForwardMatchesReferenceFloat) { ForEachCase(ForwardCheck<float>{}); }

template <class T>
struct D1Check {
  template <class Act>
  void operator()(const Case<Act>& c) const {
    FailureLog log(c.name + "<" + TypeName<T>() + ">::d1");
    const Tol tol = DerivTol<T>();
    for (double xd : DerivativeGrid()) {
      const T x = static_cast<T>(xd);
      // Relu's kink at 0: the derivative is a step there, so no difference quotient
      // straddling it means anything (its value at 0 is pinned in SpecialValues).
      if (NearKink(x, c.kinks)) continue;
      const LD want = CentralDiff(c.ref, static_cast<LD>(x));
      const LD got = c.act.d1(x);
      const LD t = tol.rtol * std::fabs(want) + tol.atol;
      log.Check(std::fabs(got - want) <= t, x, got, want, t);
    }
  }
};

TEST(Functors, D1MatchesFiniteDifferencesDouble) { ForEachCase(D1Check<double>{}); }
TEST(Functors, D1MatchesFiniteDifferencesFloat) { ForEachCase(D1Check<float>{}); }

template <class T>
struct D2Check {
  template <class Act>
  void operator()(const Case<Act>& c) const {
    FailureLog log(c.name + "<" + TypeName<T>() + ">::d2");
    const Tol tol = DerivTol<T>();
    // d1 is validated above against the independent reference; differentiate it in long
    // double so the difference quotient adds no float/double rounding.
    const auto d1 = [&](LD x) { return c.act.d1(x); };
    for (double xd : DerivativeGrid()) {
      const T x = static_cast<T>(xd);
      if (NearKink(x, c.kinks)) continue;  // relu: d1 is a step at 0
      const LD want = CentralDiff(d1, static_cast<LD>(x));
      const LD got = c.act.d2(x);
      const LD t = tol.rtol * std::fabs(want) + tol.atol;
      log.Check(std::fabs(got - want) <= t, x, got, want, t);
    }
  }
};

TEST(Functors, D2MatchesFiniteDifferencesDouble) { ForEachCase(D2Check<double>{}); }
TEST(Functors, D2MatchesFiniteDifferencesFloat) { ForEachCase(D2Check<float>{}); }

// The float functors agree with the double ones to float accuracy at the same input.
template <class Act>
void CheckFloatTracksDouble(const Case<Act>& c) {
  FailureLog log(c.name + " float vs double");
  const Tol tol = DerivTol<float>();
  for (double xd : CoreGrid()) {
    const float x = static_cast<float>(xd);
    const double xx = x;
    const struct {
      double f, d;
    } pairs[] = {{c.act.forward(x), c.act.forward(xx)},
                 {c.act.d1(x), c.act.d1(xx)},
                 {c.act.d2(x), c.act.d2(xx)}};
    for (const auto& p : pairs) {
      const LD t = tol.rtol * std::fabs(p.d) + tol.atol;
      log.Check(std::fabs(p.f - p.d) <= t, x, p.f, p.d, t);
    }
  }
}

TEST(Functors, FloatTracksDouble) {
  ForEachCase([](const auto& c) { CheckFloatTracksDouble(c); });
}

// ---------------------------------------------------------------------------------------
// Special points: kinks, 0, NaN, infinities.
// ---------------------------------------------------------------------------------------

template <class T>
void CheckSpecialValues() {
  SCOPED_TRACE(TypeName<T>());
  const T zero = 0, nzero = -T(0);
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const T inf = std::numeric_limits<T>::infinity();

  // relu: f'(0) = 0 (torch's threshold_backward uses x <= 0), f(-0.0) = +0.0 (clamp_min),
  // NaN passes through, and f'(NaN) = 1 (NaN <= 0 is false).
  const Relu relu;
  EXPECT_EQ(relu.d1(zero), T(0));
  EXPECT_EQ(relu.d1(nzero), T(0));
  EXPECT_EQ(relu.forward(nzero), T(0));
  EXPECT_FALSE(std::signbit(relu.forward(nzero))) << "relu(-0.0) must be +0.0";
  EXPECT_FALSE(std::signbit(relu.forward(zero)));
  EXPECT_TRUE(std::isnan(relu.forward(nan)));
  EXPECT_EQ(relu.d1(nan), T(1));
  EXPECT_EQ(relu.d2(nan), T(0));
  EXPECT_EQ(relu.forward(T(-2.5)), T(0));
  EXPECT_EQ(relu.forward(T(2.5)), T(2.5));
  EXPECT_EQ(relu.d1(T(-1e-30)), T(0));
  EXPECT_EQ(relu.d1(T(1e-30)), T(1));
  EXPECT_EQ(relu.d2(T(1)), T(0));
  EXPECT_EQ(relu.forward(inf), inf);
  EXPECT_EQ(relu.forward(-inf), T(0));

  // Values at 0. These are exact in binary (0.5, 0.25, 0) or, for 0.6 and sqrt(2/pi),
  // the correctly rounded constant within 4 ulps.
  const Gelu gelu{false}, gelu_tanh{true};
  const Sigmoid sigmoid;
  const Silu silu;
  const Mish mish;
  for (const Gelu& g : {gelu, gelu_tanh}) {
    SCOPED_TRACE(g.tanh_approx ? "gelu tanh" : "gelu");
    EXPECT_EQ(g.forward(zero), T(0));
    EXPECT_EQ(g.d1(zero), T(0.5));
    EXPECT_EQ(g.d1(nzero), T(0.5));
    // exact: phi(0) * 2 = sqrt(2/pi); tanh: u'(0) = sqrt(2/pi).
    if constexpr (std::is_same_v<T, float>) {
      EXPECT_FLOAT_EQ(g.d2(zero), static_cast<float>(std::sqrt(2.0L / kPiL)));
    } else {
      EXPECT_DOUBLE_EQ(g.d2(zero), static_cast<double>(std::sqrt(2.0L / kPiL)));
    }
  }
  EXPECT_EQ(sigmoid.forward(zero), T(0.5));
  EXPECT_EQ(sigmoid.d1(zero), T(0.25));
  EXPECT_EQ(sigmoid.d2(zero), T(0));
  EXPECT_EQ(silu.forward(zero), T(0));
  EXPECT_EQ(silu.d1(zero), T(0.5));
  EXPECT_EQ(silu.d2(zero), T(0.5));  // s(1-s)*2 = 1/2
  EXPECT_EQ(mish.forward(zero), T(0));
  // mish'(0) = tanh(log 2) = 3/5; mish''(0) = s(1 - m^2)*2 = 0.5 * 0.64 * 2 = 0.64.
  if constexpr (std::is_same_v<T, float>) {
    EXPECT_FLOAT_EQ(mish.d1(zero), 0.6f);
    EXPECT_FLOAT_EQ(mish.d2(zero), 0.64f);
  } else {
    EXPECT_DOUBLE_EQ(mish.d1(zero), 0.6);
    EXPECT_DOUBLE_EQ(mish.d2(zero), 0.64);
  }

  // NaN propagates through every smooth function and its derivatives.
  EXPECT_TRUE(std::isnan(gelu.forward(nan)));
  EXPECT_TRUE(std::isnan(gelu_tanh.forward(nan)));
  EXPECT_TRUE(std::isnan(sigmoid.forward(nan)));
  EXPECT_TRUE(std::isnan(silu.forward(nan)));
  EXPECT_TRUE(std::isnan(mish.forward(nan)));
  for (T v : {gelu.d1(nan), gelu.d2(nan), gelu_tanh.d1(nan), gelu_tanh.d2(nan), sigmoid.d1(nan),
              sigmoid.d2(nan), silu.d1(nan), silu.d2(nan), mish.d1(nan), mish.d2(nan)}) {
    EXPECT_TRUE(std::isnan(v)) << v;
  }

  // Infinities, as torch gives them (the formulas evaluate inf * 0 = NaN in the
  // saturated tails of x*g(x) and of the derivatives; torch's float64 CPU kernels and its
  // CUDA kernels evaluate the same formulas):
  //   gelu(+inf) = +inf, gelu(-inf) = NaN (both forms); silu(+inf) = +inf,
  //   silu(-inf) = NaN; mish(+inf) = +inf, mish(-inf) = NaN; sigmoid(+-inf) = 1, 0
  //   with derivative 0.
  EXPECT_EQ(gelu.forward(inf), inf);
  EXPECT_EQ(gelu_tanh.forward(inf), inf);
  EXPECT_TRUE(std::isnan(gelu.forward(-inf)));
  EXPECT_TRUE(std::isnan(gelu_tanh.forward(-inf)));
  EXPECT_EQ(silu.forward(inf), inf);
  EXPECT_TRUE(std::isnan(silu.forward(-inf)));
  EXPECT_EQ(mish.forward(inf), inf);
  EXPECT_TRUE(std::isnan(mish.forward(-inf)));
  EXPECT_EQ(sigmoid.forward(inf), T(1));
  EXPECT_EQ(sigmoid.forward(-inf), T(0));
  EXPECT_EQ(sigmoid.d1(inf), T(0));
  EXPECT_EQ(sigmoid.d1(-inf), T(0));
  EXPECT_EQ(relu.d1(inf), T(1));
  EXPECT_EQ(relu.d1(-inf), T(0));
}

TEST(Functors, SpecialValuesFloat) { CheckSpecialValues<float>(); }
TEST(Functors, SpecialValuesDouble) { CheckSpecialValues<double>(); }

// -0.0 keeps its sign through the smooth functions (x * g(x) with g(0) > 0), as in torch.
TEST(Functors, NegativeZeroThroughSmoothForwards) {
  const double nz = -0.0;
  EXPECT_TRUE(std::signbit(Gelu{false}.forward(nz)));
  EXPECT_TRUE(std::signbit(Gelu{true}.forward(nz)));
  EXPECT_TRUE(std::signbit(Silu{}.forward(nz)));
  EXPECT_TRUE(std::signbit(Mish{}.forward(nz)));
  const float nzf = -0.0f;
  EXPECT_TRUE(std::signbit(Gelu{false}.forward(nzf)));
  EXPECT_TRUE(std::signbit(Silu{}.forward(nzf)));
  EXPECT_TRUE(std::signbit(Mish{}.forward(nzf)));
}

// Mish switches to m = s = 1 at x >= 20; both sides of the switch agree with the
// reference (covered by the grid too, this pins the boundary itself).
TEST(Functors, MishSaturationBoundary) {
  const Mish mish;
  for (double x : {19.999, std::nextafter(20.0, 0.0), 20.0, 20.001}) {
    const LD want = RefMish(x);
    EXPECT_LE(std::fabs(mish.forward(x) - want), 8 * 2.2205e-16L * want) << x;
    EXPECT_NEAR(mish.d1(x), 1.0, 1e-15) << x;
    EXPECT_NEAR(mish.d2(x), 0.0, 1e-14) << x;
  }
}

// ---------------------------------------------------------------------------------------
// Mode functors.
// ---------------------------------------------------------------------------------------

// Inputs of the mode tests: gate/x on [-6, 6] (where every derivative is far from 0 or
// saturated), other operands pseudo-random in [-2, 2].
struct ModePoint {
  double x, a, b, c, d;  // x = input/gate; a, b, c, d = the other operands
};

std::vector<ModePoint> ModePoints(const std::vector<double>& kinks) {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  std::vector<ModePoint> pts;
  for (int i = 0; i <= 70; ++i) {
    const double x = -6.0 + i * 0.1713;
    if (NearKink(x, kinks)) continue;
    pts.push_back({x, u(rng), u(rng), u(rng), u(rng)});
  }
  return pts;
}

// Relative-to-scale closeness for identities: the functor and the test compute the same
// few products, possibly contracted to FMAs differently, so a few eps of the largest term.
template <class T>
void ExpectIdentity(T got, LD want, LD scale, const std::string& what) {
  const LD tol = 8 * std::numeric_limits<T>::epsilon() * (std::fabs(scale) + std::fabs(want)) +
                 std::numeric_limits<T>::denorm_min();
  EXPECT_LE(std::fabs(got - want), tol) << what << ": got " << got << " want "
                                        << static_cast<double>(want);
}

template <class T>
struct ModeIdentityCheck {
  template <class Act>
  void operator()(const Case<Act>& c) const {
    SCOPED_TRACE(c.name + "<" + TypeName<T>() + ">");
    const Act& f = c.act;
    for (const ModePoint& p : ModePoints(c.kinks)) {
      const T x = T(p.x), a = T(p.a), b = T(p.b), cc = T(p.c), d = T(p.d);
      const std::string at = " at x = " + std::to_string(p.x);
      {
        const T in[1] = {x};
        T out[1];
        fusedact::UnaryForward<Act>{f}(in, out);
        EXPECT_EQ(out[0], f.forward(x)) << "UnaryForward" << at;
      }
      {
        const T in[2] = {a, x};  // [grad_output, input]
        T out[1];
        fusedact::UnaryBackward<Act>{f}(in, out);
        ExpectIdentity(out[0], LD(a) * f.d1(x), 0, "UnaryBackward" + at);
      }
      {
        const T in[3] = {b, a, x};  // [grad_grad_input, grad_output, input]
        T out[2];
        fusedact::UnaryDoubleBackward<Act>{f}(in, out);
        ExpectIdentity(out[0], LD(b) * f.d1(x), 0, "UnaryDoubleBackward ggo" + at);
        ExpectIdentity(out[1], LD(b) * a * f.d2(x), 0, "UnaryDoubleBackward gi" + at);
      }
      {
        const T in[2] = {x, a};  // [gate, up]
        T out[1];
        fusedact::GatedForward<Act>{f}(in, out);
        ExpectIdentity(out[0], LD(f.forward(x)) * a, 0, "GatedForward" + at);
      }
      {
        const T in[3] = {b, x, a};  // [grad_output, gate, up]
        T out[2];
        fusedact::GatedBackward<Act>{f}(in, out);
        ExpectIdentity(out[0], LD(b) * a * f.d1(x), 0, "GatedBackward grad_gate" + at);
        ExpectIdentity(out[1], LD(b) * f.forward(x), 0, "GatedBackward grad_up" + at);
      }
      {
        // [grad_grad_gate, grad_grad_up, grad_output, gate, up]
        const T in[5] = {cc, d, b, x, a};
        T out[3];
        fusedact::GatedDoubleBackward<Act>{f}(in, out);
        const LD t1 = LD(cc) * a * f.d1(x), t2 = LD(d) * f.forward(x);
        ExpectIdentity(out[0], t1 + t2, std::fabs(t1) + std::fabs(t2),
                       "GatedDoubleBackward grad_grad_output" + at);
        const LD s1 = LD(cc) * b * a * f.d2(x), s2 = LD(d) * b * f.d1(x);
        ExpectIdentity(out[1], s1 + s2, std::fabs(s1) + std::fabs(s2),
                       "GatedDoubleBackward grad_gate" + at);
        ExpectIdentity(out[2], LD(cc) * b * f.d1(x), 0, "GatedDoubleBackward grad_up" + at);
      }
    }
  }
};

TEST(ModeFunctors, MatchDefinitionsDouble) { ForEachCase(ModeIdentityCheck<double>{}); }
TEST(ModeFunctors, MatchDefinitionsFloat) { ForEachCase(ModeIdentityCheck<float>{}); }

// The operand counts the generic kernels rely on.
TEST(ModeFunctors, Arity) {
  EXPECT_EQ(fusedact::UnaryForward<Silu>::kInputs, 1);
  EXPECT_EQ(fusedact::UnaryForward<Silu>::kOutputs, 1);
  EXPECT_EQ(fusedact::UnaryBackward<Silu>::kInputs, 2);
  EXPECT_EQ(fusedact::UnaryBackward<Silu>::kOutputs, 1);
  EXPECT_EQ(fusedact::UnaryDoubleBackward<Silu>::kInputs, 3);
  EXPECT_EQ(fusedact::UnaryDoubleBackward<Silu>::kOutputs, 2);
  EXPECT_EQ(fusedact::GatedForward<Silu>::kInputs, 2);
  EXPECT_EQ(fusedact::GatedForward<Silu>::kOutputs, 1);
  EXPECT_EQ(fusedact::GatedBackward<Silu>::kInputs, 3);
  EXPECT_EQ(fusedact::GatedBackward<Silu>::kOutputs, 2);
  EXPECT_EQ(fusedact::GatedDoubleBackward<Silu>::kInputs, 5);
  EXPECT_EQ(fusedact::GatedDoubleBackward<Silu>::kOutputs, 3);
}

// The calculus check: each backward mode is the gradient of the mode it differentiates,
// by central differences in long double. Double backward is the gradient of
//   L = <(gg, gu), GatedBackward(dy, gate, up)>   (resp. L = ggx * UnaryBackward(dy, x))
// with respect to (dy, gate, up) (resp. (dy, x)); backward is the gradient of
//   L = dy * GatedForward(gate, up)   (resp. dy * UnaryForward(x)).
// The modes under test run in double; tolerance as DerivTol<double>, scaled by the
// operands (|operands| <= 2, so |L| stays O(10)).
template <class Act>
void CheckModeCalculus(const Case<Act>& c) {
  SCOPED_TRACE(c.name);
  const Act f = c.act;
  const Tol tol = DerivTol<double>();
  const auto near = [&](double got, LD want, const std::string& what, double x) {
    const LD t = tol.rtol * std::fabs(want) + tol.atol * 10;
    EXPECT_LE(std::fabs(got - want), t)
        << what << " at x = " << x << ": got " << got << ", want " << static_cast<double>(want);
  };

  for (const ModePoint& p : ModePoints(c.kinks)) {
    const LD x = p.x, up = p.a, dy = p.b, gg = p.c, gu = p.d;

    // --- unary --------------------------------------------------------------------
    const auto unary_fwd = [&](LD xx) {
      const LD in[1] = {xx};
      LD out[1];
      fusedact::UnaryForward<Act>{f}(in, out);
      return out[0];
    };
    const auto unary_bwd = [&](LD g, LD xx) {
      const LD in[2] = {g, xx};
      LD out[1];
      fusedact::UnaryBackward<Act>{f}(in, out);
      return out[0];
    };
    {
      const double in[2] = {double(dy), double(x)};
      double out[1];
      fusedact::UnaryBackward<Act>{f}(in, out);
      near(out[0], dy * CentralDiff(unary_fwd, x), "UnaryBackward", p.x);
    }
    {
      const double in[3] = {double(gg), double(dy), double(x)};
      double out[2];
      fusedact::UnaryDoubleBackward<Act>{f}(in, out);
      near(out[0], CentralDiff([&](LD g) { return gg * unary_bwd(g, x); }, dy),
           "UnaryDoubleBackward grad_grad_output", p.x);
      near(out[1], CentralDiff([&](LD xx) { return gg * unary_bwd(dy, xx); }, x),
           "UnaryDoubleBackward grad_input", p.x);
    }

    // --- gated --------------------------------------------------------------------
    const auto gated_fwd = [&](LD g, LD u) {
      const LD in[2] = {g, u};
      LD out[1];
      fusedact::GatedForward<Act>{f}(in, out);
      return out[0];
    };
    // L(dy, gate, up) = gg * grad_gate + gu * grad_up
    const auto gated_bwd_dot = [&](LD d, LD g, LD u) {
      const LD in[3] = {d, g, u};
      LD out[2];
      fusedact::GatedBackward<Act>{f}(in, out);
      return gg * out[0] + gu * out[1];
    };
    {
      const double in[3] = {double(dy), double(x), double(up)};
      double out[2];
      fusedact::GatedBackward<Act>{f}(in, out);
      near(out[0], CentralDiff([&](LD g) { return dy * gated_fwd(g, up); }, x),
           "GatedBackward grad_gate", p.x);
      near(out[1], CentralDiff([&](LD u) { return dy * gated_fwd(x, u); }, up),
           "GatedBackward grad_up", p.x);
    }
    {
      const double in[5] = {double(gg), double(gu), double(dy), double(x), double(up)};
      double out[3];
      fusedact::GatedDoubleBackward<Act>{f}(in, out);
      near(out[0], CentralDiff([&](LD d) { return gated_bwd_dot(d, x, up); }, dy),
           "GatedDoubleBackward grad_grad_output", p.x);
      near(out[1], CentralDiff([&](LD g) { return gated_bwd_dot(dy, g, up); }, x),
           "GatedDoubleBackward grad_gate", p.x);
      near(out[2], CentralDiff([&](LD u) { return gated_bwd_dot(dy, x, u); }, up),
           "GatedDoubleBackward grad_up", p.x);
    }
  }
}

TEST(ModeFunctors, BackwardModesAreGradientsOfTheirForwardModes) {
  ForEachCase([](const auto& c) { CheckModeCalculus(c); });
}

// A NaN operand reaches the outputs it feeds (relu included: reglu(NaN gate) is NaN).
TEST(ModeFunctors, NanPropagatesThroughModes) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double in3[3] = {1.0, nan, 0.5};  // gate is NaN
  double out2[2];
  fusedact::GatedBackward<Silu>{}(in3, out2);
  EXPECT_TRUE(std::isnan(out2[0]));
  EXPECT_TRUE(std::isnan(out2[1]));
  const double in2[2] = {nan, 2.0};  // grad_output is NaN
  double out1[1];
  fusedact::UnaryBackward<Gelu>{}(in2, out1);
  EXPECT_TRUE(std::isnan(out1[0]));
  const double fin[2] = {nan, 3.0};
  fusedact::GatedForward<Relu>{}(fin, out1);
  EXPECT_TRUE(std::isnan(out1[0])) << "reglu must propagate a NaN gate";
}

}  // namespace
