// The math of every fusedact activation, and nothing else.
//
// Torch-free and `__host__ __device__`: the CPU kernels, the CUDA kernels and the C++
// tests all call these functors, so each formula is written exactly once. `T` is the
// op-math type: float for float/half/bfloat16 storage, double for double.
//
// Each activation functor has forward(x) = f(x), d1(x) = f'(x) and d2(x) = f''(x) (the
// last one serves double backward). Formulas follow torch's kernels where they define the
// values at NaN, ±inf and kinks (torch's CUDA kernel is the reference).
//
// Below the activations, the "mode" functors turn one activation into the elementwise
// maps the generic kernels run: forward, backward and double backward, for the unary and
// the gated shape class. A mode functor maps kInputs op-math values to kOutputs values.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define FUSEDACT_HD __host__ __device__ __forceinline__
#else
#define FUSEDACT_HD inline
#endif

namespace fusedact {

namespace constants {
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/sqrt(2)
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/sqrt(2*pi)
constexpr double kSqrt2OverPi = 0.79788456080286535588;  // sqrt(2/pi)
constexpr double kGeluTanhCubic = 0.044715;
// Above this, tanh(softplus(x)) and sigmoid(x) round to 1 in float and in double.
constexpr double kMishSaturation = 20.0;
}  // namespace constants

// ---------------------------------------------------------------------------------------
// Activations.
// ---------------------------------------------------------------------------------------

// gelu, exact: f = x*Phi(x);  f' = Phi(x) + x*phi(x);  f'' = phi(x)*(2 - x^2).
// gelu, tanh:  f = x/2*(1+t), t = tanh(u), u = k*(x + c*x^3);
//              f' = (1+t)/2 + x/2*(1-t^2)*u';  f'' = (1-t^2)*(u' + x/2*u'' - x*t*u'^2).
struct Gelu {
  bool tanh_approx = false;

  // t = tanh(u) and sech2 = 1 - t^2, the latter as 4e/(1+e)^2 with e = exp(-2|u|): the
  // subtraction 1 - t^2 cancels for large |u| (a few % off in float at |x| ~ 4.6).
  template <class T>
  FUSEDACT_HD static void tanh_sech2(T u, T& t, T& sech2) {
    t = std::tanh(u);
    const T e = std::exp(T(-2) * std::fabs(u));
    sech2 = T(4) * e / ((T(1) + e) * (T(1) + e));
  }

  template <class T>
  FUSEDACT_HD T forward(T x) const {
    using namespace constants;
    if (tanh_approx) {
      const T inner = T(kSqrt2OverPi) * (x + T(kGeluTanhCubic) * x * x * x);
      return T(0.5) * x * (T(1) + std::tanh(inner));
    }
    return x * T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
  }

  template <class T>
  FUSEDACT_HD T d1(T x) const {
    using namespace constants;
    if (tanh_approx) {
      T t, sech2;
      tanh_sech2(T(kSqrt2OverPi) * (x + T(kGeluTanhCubic) * x * x * x), t, sech2);
      const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluTanhCubic) * x * x);
      return T(0.5) * (T(1) + t) + T(0.5) * x * sech2 * du;
    }
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(kSqrt1_2)));
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    return cdf + x * pdf;
  }

  template <class T>
  FUSEDACT_HD T d2(T x) const {
    using namespace constants;
    if (tanh_approx) {
      T t, sech2;
      tanh_sech2(T(kSqrt2OverPi) * (x + T(kGeluTanhCubic) * x * x * x), t, sech2);
      const T du = T(kSqrt2OverPi) * (T(1) + T(3 * kGeluTanhCubic) * x * x);
      const T ddu = T(kSqrt2OverPi) * T(6 * kGeluTanhCubic) * x;
      return sech2 * (du + T(0.5) * x * ddu - x * t * du * du);
    }
    const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * x * x);
    return pdf * (T(2) - x * x);
  }
};

// sigmoid: s = 1/(1+e^-x);  s' = s*(1-s);  s'' = s*(1-s)*(1-2s).
struct Sigmoid {
  // s and 1 - s from one e = exp(-|x|), each without cancellation.
  template <class T>
  FUSEDACT_HD static void parts(T x, T& s, T& one_minus_s) {
    const T e = std::exp(-std::fabs(x));
    const T big = T(1) / (T(1) + e), small = e / (T(1) + e);
    const bool negative = x < T(0);
    s = negative ? small : big;
    one_minus_s = negative ? big : small;
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return T(1) / (T(1) + std::exp(-x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    T s, c;
    parts(x, s, c);
    return s * c;
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
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return x / (T(1) + std::exp(-x));
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    T s, c;
    Sigmoid::parts(x, s, c);
    return s * (T(1) + x * c);
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    T s, c;
    Sigmoid::parts(x, s, c);
    return s * c * (T(2) + x * (c - s));
  }
};

// mish: f = x*m, m = tanh(softplus(x)) = n/(n+2) with n = e^x*(e^x+2) (one exp);
//       f' = m + x*s*(1-m^2);  f'' = s*(1-m^2)*(2 + x*((1-s) - 2*m*s)), s = sigmoid(x).
struct Mish {
  // m = tanh(softplus(x)), 1 - m^2 = 4(n+1)/(n+2)^2, s = sigmoid(x) and 1 - s, sharing
  // one exp and free of cancellation.
  template <class T>
  FUSEDACT_HD static void parts(T x, T& m, T& one_minus_m2, T& s, T& one_minus_s) {
    if (x >= T(constants::kMishSaturation)) {
      m = T(1), one_minus_m2 = T(0), s = T(1), one_minus_s = T(0);
      return;
    }
    const T e = std::exp(x);
    const T n = e * (e + T(2));
    m = n / (n + T(2));
    one_minus_m2 = T(4) * (n + T(1)) / ((n + T(2)) * (n + T(2)));
    s = e / (e + T(1));
    one_minus_s = T(1) / (e + T(1));
  }
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    T m, m2c, s, sc;
    parts(x, m, m2c, s, sc);
    return x * m;
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    T m, m2c, s, sc;
    parts(x, m, m2c, s, sc);
    return m + x * s * m2c;
  }
  template <class T>
  FUSEDACT_HD T d2(T x) const {
    T m, m2c, s, sc;
    parts(x, m, m2c, s, sc);
    return s * m2c * (T(2) + x * (sc - T(2) * m * s));
  }
};

// relu: f = max(x, 0) with relu(NaN) = NaN and relu(-0.0) = +0.0 (torch's clamp_min);
//       f' = 0 for x <= 0, else 1 (so f'(0) = 0 and f'(NaN) = 1, as torch's threshold_backward);
//       f'' = 0.
struct Relu {
  template <class T>
  FUSEDACT_HD T forward(T x) const {
    return (x > T(0) || x != x) ? x : T(0);
  }
  template <class T>
  FUSEDACT_HD T d1(T x) const {
    return x <= T(0) ? T(0) : T(1);
  }
  template <class T>
  FUSEDACT_HD T d2(T) const {
    return T(0);
  }
};

// ---------------------------------------------------------------------------------------
// Modes: the elementwise maps of each shape class. Argument order = operand order of the
// matching op's schema.
// ---------------------------------------------------------------------------------------

// y = f(x).  in: [input]  out: [output]
template <class Act>
struct UnaryForward {
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
  static constexpr int kInputs = 2, kOutputs = 1;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    out[0] = in[0] * act.d1(in[1]);
  }
};

// Gradients of dx = dy*f'(x) given ggx = d(loss)/d(dx):
//   d/d(dy) = ggx*f'(x);  d/dx = ggx*dy*f''(x).
// in: [grad_grad_input, grad_output, input]  out: [grad_grad_output, grad_input]
template <class Act>
struct UnaryDoubleBackward {
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
  static constexpr int kInputs = 3, kOutputs = 2;
  Act act;
  template <class T>
  FUSEDACT_HD void operator()(const T* in, T* out) const {
    const T dy = in[0], gate = in[1], up = in[2];
    out[0] = dy * up * act.d1(gate);
    out[1] = dy * act.forward(gate);
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

}  // namespace fusedact
