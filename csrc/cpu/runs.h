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

// Output bytes whose pages are touched at once, ahead of the elements that write them.
constexpr int64_t kTouchBytes = int64_t(1) << 20;

// Stores a zero byte every 4096 bytes of [p, p + bytes): only where the caller writes next and
// nothing reads first. A fresh output's page faults then come in one burst instead of one in
// the middle of a kernel's loops, where on the AMD EPYC each cost more: 4096 x 4096 float32
// softmax with a fresh output, 1 thread, 43-44 ms -> 34.6-35 ms (torch 38 ms; the kernel alone
// into a reused output 9.9 ms). A page begun before p may be left out: it then faults as before.
inline void touch_pages(void* p, int64_t bytes) {
  volatile char* c = static_cast<char*>(p);
  for (int64_t i = 0; i < bytes; i += 4096) c[i] = 0;
}

// Whether the [rows, cols] operands a and b, of `size`-byte elements, surely share no byte
// (false for a negative row stride).
inline bool disjoint(const Operand& a, const Operand& b, int64_t rows, int64_t cols,
                     int64_t size) {
  if (rows > 1 && (a.row_stride < 0 || b.row_stride < 0)) return false;
  const auto extent = [&](const Operand& t) {
    return ((rows > 1 ? (rows - 1) * t.row_stride : 0) + cols) * size;
  };
  const char *pa = static_cast<const char*>(a.data), *pb = static_cast<const char*>(b.data);
  return pa + extent(a) <= pb || pb + extent(b) <= pa;
}

// Calls run(in, out, len) for every contiguous run, with in/out pointing at its first
// element of each operand. Outputs that share no byte with an input are written after
// touch_pages, a block of kTouchBytes at a time (an in-place output is read first).
template <class scalar_t, int kIn, int kOut, class Run>
void for_each_run(int64_t rows, int64_t cols, const Operand* inputs, const Operand* outputs,
                  const Run& run) {
  bool touch = rows > 0 && cols > 0;
  for (int o = 0; o < kOut; ++o)
    for (int i = 0; i < kIn; ++i)
      touch = touch && disjoint(outputs[o], inputs[i], rows, cols, sizeof(scalar_t));
  // Calls fn(in, out, len) for the runs of elements [begin, end).
  const auto walk = [&](int64_t begin, int64_t end, const auto& fn) {
    int64_t row = begin / cols, col = begin % cols;
    while (begin < end) {
      const int64_t len = std::min(cols - col, end - begin);
      const scalar_t* in[kIn];
      scalar_t* out[kOut];
      for (int i = 0; i < kIn; ++i)
        in[i] = static_cast<const scalar_t*>(inputs[i].data) + row * inputs[i].row_stride + col;
      for (int o = 0; o < kOut; ++o)
        out[o] = static_cast<scalar_t*>(outputs[o].data) + row * outputs[o].row_stride + col;
      fn(in, out, len);
      begin += len;
      ++row;
      col = 0;
    }
  };
  at::parallel_for(0, rows * cols, kGrainSize, [&](int64_t begin, int64_t end) {
    if (!touch) return walk(begin, end, run);
    const int64_t block = std::max<int64_t>(1, kTouchBytes / (kOut * int64_t(sizeof(scalar_t))));
    for (int64_t b = begin; b < end; b += block) {
      const int64_t block_end = std::min(end, b + block);
      walk(b, block_end, [](const scalar_t* const*, scalar_t* const* out, int64_t len) {
        for (int o = 0; o < kOut; ++o) touch_pages(out[o], len * int64_t(sizeof(scalar_t)));
      });
      walk(b, block_end, run);
    }
  });
}

}  // namespace cpu
}  // namespace fusedact
