// The generic CPU kernel: one elementwise map over [rows, cols], parallel over elements,
// on SIMD vectors where vectorized.h has the kernel, else one element at a time.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include <fusedact/elementwise.h>

#include "runs.h"
#include "vectorized.h"

namespace fusedact {
namespace cpu {

template <class scalar_t, class Kernel>
void elementwise(const Kernel& kernel, int64_t rows, int64_t cols, const Operand* inputs,
                 const Operand* outputs) {
#if FUSEDACT_CPU_SIMD
  if constexpr (HasSimdKernel<Kernel>::value && kSimdType<scalar_t>) {
    switch (simd_level()) {
      case SimdLevel::kAvx512:
        return AVX512::elementwise<scalar_t>(kernel, rows, cols, inputs, outputs);
      case SimdLevel::kAvx2:
        return AVX2::elementwise<scalar_t>(kernel, rows, cols, inputs, outputs);
      case SimdLevel::kNone:
        break;
    }
  }
#endif
  using opmath_t = at::opmath_type<scalar_t>;
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  for_each_run<scalar_t, kIn, kOut>(
      rows, cols, inputs, outputs,
      [&](const scalar_t* const* in, scalar_t* const* out, int64_t len) {
        for (int64_t j = 0; j < len; ++j) {
          opmath_t a[kIn], b[kOut];
          for (int i = 0; i < kIn; ++i) a[i] = static_cast<opmath_t>(in[i][j]);
          kernel(a, b);
          for (int o = 0; o < kOut; ++o) out[o][j] = static_cast<scalar_t>(b[o]);
        }
      });
}

}  // namespace cpu
}  // namespace fusedact
