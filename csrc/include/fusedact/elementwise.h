// The torch-free interface between the op layer and the generic elementwise kernels.
//
// Every fusedact kernel is one elementwise map (a mode functor of functors.h) over a
// [rows, cols] index space. Each operand is addressed as data + row * row_stride + col
// (in elements), which covers both shape classes: unary ops run one row of numel
// elements; gated ops on a packed [outer, 2, inner] tensor run `outer` rows of `inner`
// elements with the two halves as operands of row stride 2 * inner.
#pragma once

#include <cstdint>

namespace fusedact {

struct Operand {
  void* data;
  int64_t row_stride;  // elements between rows; unused when rows == 1
};

enum class ScalarKind { Float, Double, Half, BFloat16, Byte, Char, Short, Int, Long };

// Whether a mode functor runs on integer tensors too (its `kIntegers`, false if absent).
template <class Kernel, class = void>
struct KernelTakesIntegers {
  static constexpr bool value = false;
};
template <class Kernel>
struct KernelTakesIntegers<Kernel, decltype(void(Kernel::kIntegers))> {
  static constexpr bool value = Kernel::kIntegers;
};

namespace cuda {
// Runs `kernel` on the CUDA stream `stream` (a cudaStream_t) of the current device.
// Returns nullptr on success, else the CUDA error string. Instantiated in cuda/*.cu for
// every mode of every op of the op table.
template <class Kernel>
const char* launch_elementwise(const Kernel& kernel, ScalarKind kind, int64_t rows,
                               int64_t cols, const Operand* inputs, const Operand* outputs,
                               void* stream);
}  // namespace cuda

}  // namespace fusedact
