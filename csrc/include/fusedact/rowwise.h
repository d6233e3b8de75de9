// The row-wise shape class: softmax-like activations over one dimension ("the row") of a
// tensor viewed contiguously as [outer, n, inner]; the row of (o, c) is the n elements
// o*n*inner + j*inner + c. Torch-free: the CPU and CUDA kernels share this math.
//
// With s = -1 for softmin (else +1), m = max_j s*x_j and Z = sum_j exp(s*x_j - m):
//   softmax      y_i = exp(s*x_i - m) / Z       dx_i = s * y_i * (g_i - sum_j g_j*y_j)
//   log_softmax  y_i = s*x_i - m - log(Z)       dx_i = s * (g_i - exp(y_i) * sum_j g_j)
// Subtracting the maximum keeps exp in range; a row of all -inf gives NaN (-inf - -inf),
// as torch's.
#pragma once

#include <cstdint>

#include <fusedact/elementwise.h>
#include <fusedact/functors.h>

namespace fusedact {

struct RowActivation {
  bool log;     // log_softmax
  bool negate;  // softmin: the activation of -x

  // s*x, the value the row's maximum and exponentials are taken of.
  template <class T>
  FUSEDACT_HD T signed_input(T x) const {
    return negate ? x * T(-1) : x;
  }
  // What the row normalizes by, from Z: 1/Z (softmax, a product per element) or log(Z).
  template <class T>
  FUSEDACT_HD T normalizer(T row_sum) const {
    return log ? Math<T>::log(row_sum) : T(1) / row_sum;
  }
  // y from shifted = s*x - m, exp(shifted) where already computed, and the normalizer.
  template <class T>
  FUSEDACT_HD T output(T shifted, T exp_shifted, T normalizer) const {
    return log ? shifted - normalizer : exp_shifted * normalizer;
  }
  // The backward's row reduction: total + g*y (softmax) or total + g (log_softmax), the
  // product fused (an explicit fma rounds the same in every kernel and loop variant).
  template <class T>
  FUSEDACT_HD T accumulate_backward(T total, T grad, T output) const {
    return log ? total + grad : Math<T>::fma(grad, output, total);
  }
  // dx from g, y and the row's total of accumulate_backward.
  template <class T>
  FUSEDACT_HD T backward(T grad, T output, T total) const {
    const T dx = log ? grad - Math<T>::exp_nonpositive(output) * total : output * (grad - total);
    return negate ? dx * T(-1) : dx;
  }
};

namespace cuda {
// The CUDA row kernels on `stream` (a cudaStream_t) of the current device; contiguous
// [outer, n, inner] operands of dtype `kind` (float, double, half or bfloat16). Return
// nullptr on success, else the CUDA error string. Defined in cuda/rowwise.cu.
const char* launch_rowwise_forward(RowActivation act, ScalarKind kind, const void* input,
                                   void* output, int64_t outer, int64_t n, int64_t inner,
                                   void* stream);
const char* launch_rowwise_backward(RowActivation act, ScalarKind kind, const void* grad_output,
                                    const void* output, void* grad_input, int64_t outer,
                                    int64_t n, int64_t inner, void* stream);
}  // namespace cuda

}  // namespace fusedact
