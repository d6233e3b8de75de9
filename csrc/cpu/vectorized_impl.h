// The body of the SIMD kernels, included by one translation unit per instruction set after
// it has set CPU_CAPABILITY (AVX2 or AVX512) and the matching target pragma. Every name
// here lives in namespace cpu::CPU_CAPABILITY, and at::vec's types in their own inline
// namespace per capability, so the units never define the same symbol twice.
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <string_view>

#include <fusedact/op_table.h>

#include "vectorized.h"

namespace fusedact {

// The functors' primitives on SIMD vectors: SLEEF's 1-ulp functions, blend for select.
template <class S>
struct Math<at::vec::Vectorized<S>> {
  using V = at::vec::Vectorized<S>;
  static V c(double v) { return V(static_cast<S>(v)); }
  static V exp(const V& x) { return x.exp(); }
  static V expm1(const V& x) { return x.expm1(); }
  static V log1p(const V& x) { return x.log1p(); }
  static V erf(const V& x) { return x.erf(); }
  static V tanh(const V& x) { return x.tanh(); }
  static V abs(const V& x) { return x.abs(); }
  static V zero_like(const V&) { return V(S(0)); }
  static V full_like(const V&, double v) { return c(v); }
  static V select(const V& mask, const V& if_true, const V& if_false) {
    return V::blendv(if_false, if_true, mask);
  }
};

namespace cpu {
namespace CPU_CAPABILITY {

using at::vec::Vectorized;

// Elements per parallel task, as the scalar kernel.
constexpr int64_t kSimdGrainSize = 16384;

// `kernel` over n contiguous elements. Half types load one vector of storage and compute on
// its two float halves. The tail is a partial load (zero-filled lanes, not stored), so every
// element goes through the same instructions wherever it sits (batch invariance).
template <class scalar_t, class Kernel>
void run_contiguous(const Kernel& kernel, const scalar_t* const* in, scalar_t* const* out,
                    int64_t n) {
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  using Storage = Vectorized<scalar_t>;
  constexpr int64_t step = Storage::size();
  for (int64_t j = 0; j < n; j += step) {
    const int64_t count = std::min(step, n - j);
    Storage loaded[kIn];
    for (int i = 0; i < kIn; ++i)
      loaded[i] = count == step ? Storage::loadu(in[i] + j) : Storage::loadu(in[i] + j, count);
    Storage results[kOut];
    if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
      kernel(loaded, results);
    } else {
      using Float = Vectorized<float>;
      Float low[kIn], high[kIn], low_out[kOut], high_out[kOut];
      for (int i = 0; i < kIn; ++i)
        std::tie(low[i], high[i]) = at::vec::convert_to_float<scalar_t>(loaded[i]);
      kernel(low, low_out);
      kernel(high, high_out);
      for (int o = 0; o < kOut; ++o)
        results[o] = at::vec::convert_from_float<scalar_t>(low_out[o], high_out[o]);
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
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  at::parallel_for(0, rows * cols, kSimdGrainSize, [&](int64_t begin, int64_t end) {
    int64_t row = begin / cols, col = begin % cols;
    while (begin < end) {
      const int64_t len = std::min(cols - col, end - begin);  // contiguous run inside a row
      const scalar_t* in[kIn];
      scalar_t* out[kOut];
      for (int i = 0; i < kIn; ++i)
        in[i] = static_cast<const scalar_t*>(inputs[i].data) + row * inputs[i].row_stride + col;
      for (int o = 0; o < kOut; ++o)
        out[o] = static_cast<scalar_t*>(outputs[o].data) + row * outputs[o].row_stride + col;
      run_contiguous<scalar_t>(kernel, in, out, len);
      begin += len;
      ++row;
      col = 0;
    }
  });
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

__attribute__((used)) static const void* const kSimdKernels[] = {
    FUSEDACT_UNARY_OPS(FUSEDACT_SIMD_UNARY) FUSEDACT_GATED_OPS(FUSEDACT_SIMD_GATED)};

#undef FUSEDACT_SIMD_GATED
#undef FUSEDACT_SIMD_UNARY
#undef FUSEDACT_SIMD_TYPES

}  // namespace CPU_CAPABILITY
}  // namespace cpu
}  // namespace fusedact
