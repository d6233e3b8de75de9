// The SIMD kernels, compiled once per instruction set: a translation unit defines
// FUSEDACT_SIMD_AVX512 or FUSEDACT_SIMD_AVX2 and includes this file. torch's headers come
// first, compiled for every CPU; then GCC's target pragma covers at::vec, the functors and
// the kernels (templates take the target of the place they are defined). Every name here
// lives in namespace cpu::CPU_CAPABILITY, and at::vec's types in their own inline namespace
// per capability, so the units never define the same symbol twice.
#include "simd.h"
#if FUSEDACT_CPU_SIMD
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string_view>
#include <tuple>

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // a note on vector arguments, not a problem here
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // at::vec has clang/CUDA loop pragmas

#if defined(FUSEDACT_SIMD_AVX512)
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#define CPU_CAPABILITY AVX512
#define CPU_CAPABILITY_AVX512
#define FUSEDACT_SIMD_FLOATS 16
#elif defined(FUSEDACT_SIMD_AVX2)
#pragma GCC target("avx2,fma,f16c")
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#define FUSEDACT_SIMD_FLOATS 8
#else
#error "define FUSEDACT_SIMD_AVX512 or FUSEDACT_SIMD_AVX2 before including vectorized_impl.h"
#endif

// GCC's target pragma does not define the feature macros in C++; SLEEF's header needs them.
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#if defined(FUSEDACT_SIMD_AVX512)
#ifndef __AVX512F__
#define __AVX512F__ 1
#endif
#ifndef __AVX512BW__
#define __AVX512BW__ 1
#endif
#ifndef __AVX512VL__
#define __AVX512VL__ 1
#endif
#ifndef __AVX512DQ__
#define __AVX512DQ__ 1
#endif
#endif

#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <fusedact/op_table.h>

#include "rowwise_kernel.h"
#include "runs.h"
#include "vec_float_math.h"
#include "vectorized.h"

namespace fusedact {

// The functors' primitives on SIMD vectors: SLEEF's 1-ulp functions, blend for select.
template <class S>
struct VectorMath : CompoundMembers<at::vec::Vectorized<S>, at::vec::Vectorized<S>> {
  using V = at::vec::Vectorized<S>;
  static V c(double v) { return V(static_cast<S>(v)); }
  static V exp(const V& x) { return x.exp(); }
  static V exp_nonpositive(const V& x) { return x.exp(); }
  static V expm1(const V& x) { return x.expm1(); }
  static V log1p(const V& x) { return x.log1p(); }
  static V log(const V& x) { return x.log(); }
  static V fma(const V& a, const V& b, const V& c) { return at::vec::fmadd(a, b, c); }
  static V divide(const V& a, double b) { return a / c(b); }
  static V erfc(const V& x) { return x.erfc(); }
  static V tanh(const V& x) { return x.tanh(); }
  static V abs(const V& x) { return x.abs(); }
  static V zero_like(const V&) { return V(S(0)); }
  static V full_like(const V&, double v) { return c(v); }
  static V select(const V& mask, const V& if_true, const V& if_false) {
    if constexpr (std::is_same_v<S, float>) {
      return vec_float_math::select(mask, if_true, if_false);
    }
#if defined(CPU_CAPABILITY_AVX512)
    if constexpr (std::is_same_v<S, double>) {  // vec_float_math::select's bitwise select
      return _mm512_castsi512_pd(_mm512_ternarylogic_epi64(_mm512_castpd_si512(mask),
                                                           _mm512_castpd_si512(if_true),
                                                           _mm512_castpd_si512(if_false), 0xCA));
    }
#endif
    return V::blendv(if_false, if_true, mask);
  }
};
template <class S>
struct Math<at::vec::Vectorized<S>> : VectorMath<S> {};
// float (and the half types, computed in float): the inline functions of vec_float_math.h.
template <>
struct Math<at::vec::Vectorized<float>> : VectorMath<float> {
  using V = at::vec::Vectorized<float>;
  static V exp(const V& x) { return vec_float_math::exp(x); }
  static V exp_nonpositive(const V& x) { return vec_float_math::exp_nonpositive(x); }
  static V expm1(const V& x) { return vec_float_math::expm1(x); }
  static V divide(const V& a, double b) { return vec_float_math::divide(a, static_cast<float>(b)); }
  static V tanh(const V& x) { return vec_float_math::tanh(x); }
  static V erfc(const V& x) { return vec_float_math::erfc(x); }
  static V add_log1p_exp(const V& a, const V& z) { return vec_float_math::add_log1p_exp(a, z); }
  static V tanh_softplus(const V& x) { return vec_float_math::tanh_softplus(x); }
  static V normal_cdf(const V& x) { return vec_float_math::normal_cdf(x); }
  static V cdf_plus_x_pdf(const V& x) { return vec_float_math::cdf_plus_x_pdf(x); }
  static V tanh_gelu_slope(const V& x) {
    return vec_float_math::tanh_gelu_slope(x, Compound<V>::tanh_gelu_slope(x));
  }
  template <class Formula>
  static V tanh_gelu_slope(const V& x, const Formula& formula) {
    return vec_float_math::tanh_gelu_slope(x, formula());
  }
};

namespace cpu {
namespace CPU_CAPABILITY {

using at::vec::Vectorized;

// `kernel` over n contiguous elements. Half types load one vector of storage and compute on
// its two float halves. The tail is a partial load (zero-filled lanes, not stored), so every
// element goes through the same instructions wherever it sits (batch invariance).
// NaN lanes as the one quiet NaN (+, no payload): which NaN an instruction passes on
// depends on operand order, which differs between the loop variants below (and the
// compiler's choices); results must be bitwise the same wherever an element sits.
template <class V>
V canonical_nan(const V& v) {
  using S = typename V::value_type;
#if defined(CPU_CAPABILITY_AVX512)
  // One compare into a mask register and a masked move: at::vec's isnan and blendv turn
  // the mask into a vector and back (relu forward in cache: 0.19 -> 0.17 ns per element).
  if constexpr (std::is_same_v<S, float>) {
    return _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                              _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
  } else if constexpr (std::is_same_v<S, double>) {
    return _mm512_mask_mov_pd(v, _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q),
                              _mm512_set1_pd(std::numeric_limits<double>::quiet_NaN()));
  }
#endif
  return V::blendv(v, V(std::numeric_limits<S>::quiet_NaN()), v.isnan());
}

// `kernel` on loaded operands, NaNs canonical.
template <class Kernel, class V>
void evaluate(const Kernel& kernel, const V* in, V* out) {
  kernel(in, out);
  for (int o = 0; o < Kernel::kOutputs; ++o) out[o] = canonical_nan(out[o]);
}

// Storage vectors of a half type to float vectors and back, for the elementwise loops, where
// which element sits in which float lane does not matter. float16: at::vec's two halves.
template <class scalar_t>
struct HalfLanes {
  using Storage = Vectorized<scalar_t>;
  using Float = Vectorized<float>;
  static void to_float(const Storage& v, Float& first, Float& second) {
    std::tie(first, second) = at::vec::convert_to_float<scalar_t>(v);
  }
  static Storage from_float(const Float& first, const Float& second) {
    return at::vec::convert_from_float<scalar_t>(first, second);
  }
};

// bfloat16: the even elements (shifted into the high half of their 32-bit lane) and the odd
// ones (masked in place), two instructions where the two halves take five; the results go
// back interleaved by one 16-bit blend. Rounding is to nearest even, as c10::BFloat16 rounds,
// by adding 0x7FFF plus the lowest kept bit; it relies on NaN lanes being canonical
// (evaluate), so that no NaN payload carries into the exponent or the sign (at::vec's
// conversion checks for NaN itself). In cache (tools/kernel_bench.cpp), relu forward:
// 0.130 -> 0.102-0.109 ns per element, hardsigmoid forward 0.31 -> 0.19-0.21.
template <>
struct HalfLanes<c10::BFloat16> {
  using Storage = Vectorized<c10::BFloat16>;
  using Float = Vectorized<float>;
  using Ints = Vectorized<int32_t>;
#if defined(CPU_CAPABILITY_AVX512)
  using Register = __m512i;
#else
  using Register = __m256i;
#endif
  static void to_float(const Storage& v, Float& even, Float& odd) {
    const Ints words(static_cast<Register>(v));
    even = at::vec::cast<float>(words << Ints(16));
    odd = at::vec::cast<float>(words & Ints(static_cast<int32_t>(0xFFFF0000u)));
  }
  // each lane's bfloat16 in its high 16 bits
  static Ints rounded(const Float& v) {
    const Ints b = at::vec::cast<int32_t>(v);
    return b + Ints(0x7FFF) + ((b >> Ints(16)) & Ints(1));
  }
  static Storage from_float(const Float& even, const Float& odd) {
    const Ints low = rounded(even) >> Ints(16), high = rounded(odd);
#if defined(CPU_CAPABILITY_AVX512)
    return Storage(_mm512_mask_blend_epi16(0xAAAAAAAAu, low, high));
#else
    return Storage(_mm256_blend_epi16(low, high, 0xAA));
#endif
  }
};

// Bytes ahead of each input that the SIMD loops prefetch. The hardware prefetchers alone fell
// behind the bfloat16 loops once their data came from memory: sigmoid forward, 1 thread,
// 24-64 MiB of bfloat16, 0.94-1.97 -> 0.46-1.01 ns per element (torch 0.47-1.28), with float32
// and in-cache times unchanged (Intel Xeon with AVX-512, 2026-11-23). The float loop below,
// two vectors per iteration, prefetches one line of the two: that measured the same.
constexpr int64_t kPrefetchBytes = 4096;

template <class scalar_t, class Kernel>
void run_contiguous(const Kernel& kernel, const scalar_t* const* in, scalar_t* const* out,
                    int64_t n) {
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  using Storage = Vectorized<scalar_t>;
  constexpr int64_t step = Storage::size();
  int64_t j = 0;
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    // Two independent vectors per iteration: the activations are long dependency chains
    // (exp, a division), and two in one body let the compiler interleave them (up to 2x on
    // tanh-GELU). The half types below already evaluate two float vectors per load.
    for (; j + 2 * step <= n; j += 2 * step) {
      Storage first_in[kIn], second_in[kIn], first_out[kOut], second_out[kOut];
      for (int i = 0; i < kIn; ++i) {
        __builtin_prefetch(reinterpret_cast<const char*>(in[i] + j) + kPrefetchBytes);
        first_in[i] = Storage::loadu(in[i] + j);
        second_in[i] = Storage::loadu(in[i] + j + step);
      }
      evaluate(kernel, first_in, first_out);
      evaluate(kernel, second_in, second_out);
      for (int o = 0; o < kOut; ++o) {
        first_out[o].store(out[o] + j);
        second_out[o].store(out[o] + j + step);
      }
    }
  }
  for (; j < n; j += step) {
    const int64_t count = std::min(step, n - j);
    Storage loaded[kIn];
    for (int i = 0; i < kIn; ++i) {
      __builtin_prefetch(reinterpret_cast<const char*>(in[i] + j) + kPrefetchBytes);
      loaded[i] = count == step ? Storage::loadu(in[i] + j) : Storage::loadu(in[i] + j, count);
    }
    Storage results[kOut];
    if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
      evaluate(kernel, loaded, results);
    } else {
      using Float = Vectorized<float>;
      Float low[kIn], high[kIn], low_out[kOut], high_out[kOut];
      for (int i = 0; i < kIn; ++i) HalfLanes<scalar_t>::to_float(loaded[i], low[i], high[i]);
      evaluate(kernel, low, low_out);
      evaluate(kernel, high, high_out);
      for (int o = 0; o < kOut; ++o)
        results[o] = HalfLanes<scalar_t>::from_float(low_out[o], high_out[o]);
    }
    for (int o = 0; o < kOut; ++o) {
      if (count == step) {
        results[o].store(out[o] + j);
      } else {
        results[o].store(out[o] + j, count);
      }
    }
  }
}

template <class scalar_t, class Kernel>
void elementwise(const Kernel& kernel, int64_t rows, int64_t cols, const Operand* inputs,
                 const Operand* outputs) {
  for_each_run<scalar_t, Kernel::kInputs, Kernel::kOutputs>(
      rows, cols, inputs, outputs,
      [&](const scalar_t* const* in, scalar_t* const* out, int64_t len) {
        run_contiguous<scalar_t>(kernel, in, out, len);
      });
}

// The SIMD lane policy of rowwise_kernel.h: float and double load one vector per block;
// the half types load one vector of storage and compute on its two float halves.
template <class scalar_t>
struct VecLanes {
  using opmath = at::opmath_type<scalar_t>;
  using V = Vectorized<opmath>;
  using Storage = Vectorized<scalar_t>;
  static constexpr int kParts = std::is_same_v<scalar_t, opmath> ? 1 : 2;
  static constexpr int64_t kPartLanes = V::size(), kStep = Storage::size();
  static V splat(opmath v) { return V(v); }
  static void load(const scalar_t* p, int64_t count, V* parts) {
    const Storage s = count == kStep ? Storage::loadu(p) : Storage::loadu(p, count);
    if constexpr (kParts == 1) {
      parts[0] = s;
    } else {
      std::tie(parts[0], parts[1]) = at::vec::convert_to_float<scalar_t>(s);
    }
  }
  static void store(scalar_t* p, int64_t count, const V* parts) {
    Storage s;
    if constexpr (kParts == 1) {
      s = parts[0];
    } else {
      s = at::vec::convert_from_float<scalar_t>(parts[0], parts[1]);
    }
    if (count == kStep) {
      s.store(p);
    } else {
      s.store(p, count);
    }
  }
  // Op-math values: each part's lanes one after another.
  static void load_opmath(const opmath* p, int64_t count, V* parts) {
    for (int i = 0; i < kParts; ++i) {
      const int64_t lanes = std::clamp<int64_t>(count - i * kPartLanes, 0, kPartLanes);
      parts[i] = lanes == kPartLanes ? V::loadu(p + i * kPartLanes) : V::loadu(p + i * kPartLanes, lanes);
    }
  }
  static void store_opmath(opmath* p, int64_t count, const V* parts) {
    for (int i = 0; i < kParts; ++i) {
      const int64_t lanes = std::clamp<int64_t>(count - i * kPartLanes, 0, kPartLanes);
      if (lanes == kPartLanes) {
        parts[i].store(p + i * kPartLanes);
      } else if (lanes > 0) {
        parts[i].store(p + i * kPartLanes, lanes);
      }
    }
  }
  static V tail(const V& fill, const V& v, int64_t lanes) {
    return lanes == kPartLanes ? v : V::set(fill, v, lanes);
  }
  static V max(const V& a, const V& b) { return at::vec::clamp_min(a, b); }  // one instruction
  // Horizontal reductions by in-register shuffles, in a fixed order.
  static opmath reduce_max(const V& v) {
    return at::vec::vec_reduce_all<opmath>([](const V& x, const V& y) { return max(x, y); }, v);
  }
  static opmath reduce_sum(const V& v) {
    return at::vec::vec_reduce_all<opmath>([](const V& x, const V& y) { return x + y; }, v);
  }
};

template <class scalar_t>
void rowwise_forward(RowActivation act, const scalar_t* input, scalar_t* output,
                     int64_t outer, int64_t n, int64_t inner) {
  rowwise::forward<VecLanes<scalar_t>>(act, input, output, outer, n, inner);
}

template <class scalar_t>
void rowwise_backward(RowActivation act, const scalar_t* grad_output,
                      const scalar_t* output, scalar_t* grad_input, int64_t outer, int64_t n,
                      int64_t inner) {
  rowwise::backward<VecLanes<scalar_t>>(act, grad_output, output, grad_input, outer, n, inner);
}

// Taking their addresses instantiates (and emits) the kernels of every op-table row.
#define FUSEDACT_SIMD_TYPES(...)                                              \
  reinterpret_cast<const void*>(&elementwise<float, __VA_ARGS__>),            \
      reinterpret_cast<const void*>(&elementwise<double, __VA_ARGS__>),       \
      reinterpret_cast<const void*>(&elementwise<c10::Half, __VA_ARGS__>),    \
      reinterpret_cast<const void*>(&elementwise<c10::BFloat16, __VA_ARGS__>),
#define FUSEDACT_SIMD_UNARY(name, Functor, ...)                                  \
  FUSEDACT_SIMD_TYPES(UnaryForward<Functor>)                                     \
  FUSEDACT_SIMD_TYPES(UnaryBackward<UnaryDerivatives<Functor>>)                  \
  FUSEDACT_SIMD_TYPES(UnaryDoubleBackward<UnaryDerivatives<Functor>>)            \
  FUSEDACT_SIMD_TYPES(UnaryBackward<InplaceDerivatives<Functor>>)                \
  FUSEDACT_SIMD_TYPES(UnaryDoubleBackward<InplaceDerivatives<Functor>>)
#define FUSEDACT_SIMD_GATED(name, Functor, ...) \
  FUSEDACT_SIMD_TYPES(GatedForward<Functor>)    \
  FUSEDACT_SIMD_TYPES(GatedBackward<Functor>)   \
  FUSEDACT_SIMD_TYPES(GatedDoubleBackward<Functor>)

#define FUSEDACT_SIMD_WEIGHTED(name, Functor)     \
  FUSEDACT_SIMD_TYPES(WeightedForward<Functor>)    \
  FUSEDACT_SIMD_TYPES(WeightedBackward<Functor>)   \
  FUSEDACT_SIMD_TYPES(WeightedInputBackward<Functor>)

#define FUSEDACT_SIMD_ROWWISE(T)                                     \
  reinterpret_cast<const void*>(&rowwise_forward<T>),                \
      reinterpret_cast<const void*>(&rowwise_backward<T>),

__attribute__((used)) static const void* const kSimdKernels[] = {
    FUSEDACT_UNARY_OPS(FUSEDACT_SIMD_UNARY) FUSEDACT_GATED_OPS(FUSEDACT_SIMD_GATED)
    FUSEDACT_WEIGHTED_OPS(FUSEDACT_SIMD_WEIGHTED)
    FUSEDACT_SIMD_ROWWISE(float) FUSEDACT_SIMD_ROWWISE(double)
    FUSEDACT_SIMD_ROWWISE(c10::Half) FUSEDACT_SIMD_ROWWISE(c10::BFloat16)};

#undef FUSEDACT_SIMD_ROWWISE
#undef FUSEDACT_SIMD_WEIGHTED

#undef FUSEDACT_SIMD_GATED
#undef FUSEDACT_SIMD_UNARY
#undef FUSEDACT_SIMD_TYPES

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fusedact

static_assert(at::vec::Vectorized<float>::size() == FUSEDACT_SIMD_FLOATS,
              "at::vec was not built for this target");

#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif  // FUSEDACT_CPU_SIMD
