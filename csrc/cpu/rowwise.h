// The CPU row kernels' entry points: the SIMD unit of this machine's instruction set
// (vectorized_impl.h), else the same algorithm one element at a time (ScalarLanes).
#pragma once

#include <ATen/OpMathType.h>

#include <cmath>
#include <cstdint>

#include <fusedact/rowwise.h>

#include "rowwise_kernel.h"
#include "vectorized.h"

namespace fusedact {
namespace cpu {

// The scalar lane policy of rowwise_kernel.h: a block is one element.
template <class scalar_t>
struct ScalarLanes {
  using opmath = at::opmath_type<scalar_t>;
  using V = opmath;
  static constexpr int kParts = 1;
  static constexpr int64_t kPartLanes = 1, kStep = 1;
  static V splat(opmath v) { return v; }
  static void load(const scalar_t* p, int64_t, V* parts) { parts[0] = static_cast<opmath>(*p); }
  static void store(scalar_t* p, int64_t, const V* parts) { *p = static_cast<scalar_t>(parts[0]); }
  static void load_opmath(const opmath* p, int64_t, V* parts) { parts[0] = *p; }
  static void store_opmath(opmath* p, int64_t, const V* parts) { *p = parts[0]; }
  static V tail(V fill, V v, int64_t lanes) { return lanes > 0 ? v : fill; }
  static V max(V a, V b) { return std::isnan(a) || a > b ? a : b; }
  static opmath reduce_max(V v) { return v; }
  static opmath reduce_sum(V v) { return v; }
};

template <class scalar_t>
void rowwise_forward(RowActivation act, const scalar_t* input, scalar_t* output,
                     int64_t outer, int64_t n, int64_t inner) {
#if FUSEDACT_CPU_SIMD
  switch (simd_level()) {
    case SimdLevel::kAvx512:
      return AVX512::rowwise_forward(act, input, output, outer, n, inner);
    case SimdLevel::kAvx2:
      return AVX2::rowwise_forward(act, input, output, outer, n, inner);
    case SimdLevel::kNone:
      break;
  }
#endif
  rowwise::forward<ScalarLanes<scalar_t>>(act, input, output, outer, n, inner);
}

template <class scalar_t>
void rowwise_backward(RowActivation act, const scalar_t* grad_output,
                      const scalar_t* output, scalar_t* grad_input, int64_t outer, int64_t n,
                      int64_t inner) {
#if FUSEDACT_CPU_SIMD
  switch (simd_level()) {
    case SimdLevel::kAvx512:
      return AVX512::rowwise_backward(act, grad_output, output, grad_input, outer, n, inner);
    case SimdLevel::kAvx2:
      return AVX2::rowwise_backward(act, grad_output, output, grad_input, outer, n, inner);
    case SimdLevel::kNone:
      break;
  }
#endif
  rowwise::backward<ScalarLanes<scalar_t>>(act, grad_output, output, grad_input, outer, n, inner);
}

}  // namespace cpu
}  // namespace fusedact
