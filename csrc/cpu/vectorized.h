// The SIMD CPU kernels: the generic elementwise map with the functors evaluated on
// at::vec::Vectorized (float: the inline exp/tanh/erf of vec_float_math.h; double: SLEEF),
// compiled once per instruction set (vectorized_avx2.cpp, vectorized_avx512.cpp) and chosen
// at run time from torch's CPU capability (ATEN_CPU_CAPABILITY overrides it, as for torch). The unary
// and gated modes in float, double, float16 and bfloat16 take this path; integer inputs and
// the weighted ops take the scalar kernel of elementwise.h.
#pragma once

#include <cstdint>
#include <type_traits>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <fusedact/elementwise.h>
#include <fusedact/functors.h>
#include <fusedact/rowwise.h>

#include "simd.h"

namespace fusedact {
namespace cpu {

// Defined, for every kernel of the op table, in the translation unit of each instruction set.
#define FUSEDACT_SIMD_UNIT_DECLARATIONS                                                       \
  template <class scalar_t, class Kernel>                                                     \
  void elementwise(const Kernel& kernel, int64_t rows, int64_t cols, const Operand* inputs,   \
                   const Operand* outputs);                                                   \
  template <class scalar_t>                                                                   \
  void rowwise_forward(RowActivation act, const scalar_t* input, scalar_t* output,            \
                       int64_t outer, int64_t n, int64_t inner);                              \
  template <class scalar_t>                                                                   \
  void rowwise_backward(RowActivation act, const scalar_t* grad_output,                       \
                        const scalar_t* output, scalar_t* grad_input, int64_t outer,          \
                        int64_t n, int64_t inner);
namespace AVX2 {
FUSEDACT_SIMD_UNIT_DECLARATIONS
}
namespace AVX512 {
FUSEDACT_SIMD_UNIT_DECLARATIONS
}
#undef FUSEDACT_SIMD_UNIT_DECLARATIONS

// The mode functors the SIMD units instantiate.
template <template <class> class Mode>
inline constexpr bool kSimdMode = false;
template <> inline constexpr bool kSimdMode<UnaryForward> = true;
template <> inline constexpr bool kSimdMode<UnaryBackward> = true;
template <> inline constexpr bool kSimdMode<UnaryDoubleBackward> = true;
template <> inline constexpr bool kSimdMode<GatedForward> = true;
template <> inline constexpr bool kSimdMode<GatedBackward> = true;
template <> inline constexpr bool kSimdMode<GatedDoubleBackward> = true;
template <> inline constexpr bool kSimdMode<WeightedForward> = true;
template <> inline constexpr bool kSimdMode<WeightedBackward> = true;
template <> inline constexpr bool kSimdMode<WeightedInputBackward> = true;

template <class Kernel>
struct HasSimdKernel : std::false_type {};
template <template <class> class Mode, class A>
struct HasSimdKernel<Mode<A>> : std::bool_constant<kSimdMode<Mode>> {};

template <class scalar_t>
constexpr bool kSimdType = std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double> ||
                           std::is_same_v<scalar_t, c10::Half> ||
                           std::is_same_v<scalar_t, c10::BFloat16>;

enum class SimdLevel { kNone, kAvx2, kAvx512 };
// The instruction set torch's CPU kernels use on this machine (at most AVX-512).
SimdLevel simd_level();

}  // namespace cpu
}  // namespace fusedact
