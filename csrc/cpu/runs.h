// The parallel walk shared by the scalar and the SIMD CPU kernels: [rows, cols] split into
// tasks over elements, each task cut into contiguous runs inside one row.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include <fusedact/elementwise.h>

namespace fusedact {
namespace cpu {

// Elements per parallel task: large enough to amortize task start-up, small enough to
// split a few hundred thousand elements across cores.
constexpr int64_t kGrainSize = 16384;

// Calls run(in, out, len) for every contiguous run, with in/out pointing at its first
// element of each operand.
template <class scalar_t, int kIn, int kOut, class Run>
void for_each_run(int64_t rows, int64_t cols, const Operand* inputs, const Operand* outputs,
                  const Run& run) {
  at::parallel_for(0, rows * cols, kGrainSize, [&](int64_t begin, int64_t end) {
    int64_t row = begin / cols, col = begin % cols;
    while (begin < end) {
      const int64_t len = std::min(cols - col, end - begin);
      const scalar_t* in[kIn];
      scalar_t* out[kOut];
      for (int i = 0; i < kIn; ++i)
        in[i] = static_cast<const scalar_t*>(inputs[i].data) + row * inputs[i].row_stride + col;
      for (int o = 0; o < kOut; ++o)
        out[o] = static_cast<scalar_t*>(outputs[o].data) + row * outputs[o].row_stride + col;
      run(in, out, len);
      begin += len;
      ++row;
      col = 0;
    }
  });
}

}  // namespace cpu
}  // namespace fusedact
