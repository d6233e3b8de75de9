// The parallel walk shared by the scalar and the SIMD CPU kernels: [rows, cols] split into
// tasks over elements, each task cut into contiguous runs inside one row.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include <fusedact/elementwise.h>

namespace fusedact {
namespace cpu {

// Elements per parallel task: large enough to amortize task start-up, small enough to
// split a few hundred thousand elements across cores.
constexpr int64_t kGrainSize = 16384;

// Output bytes whose pages are mapped at once, ahead of the elements that write them.
constexpr int64_t kPrefaultBytes = int64_t(1) << 20;

// Maps the pages of [p, p + bytes) writable in one madvise(MADV_POPULATE_WRITE) call when
// they are not mapped yet (a fresh output), without changing a byte. A fresh output's page
// faults, taken one by one inside a kernel's loops, cost more than the kernel itself: 4096 x
// 4096 float32 softmax, 1 thread, 43-44 ms with a fresh output vs 9.9 ms into a reused one
// (AMD EPYC; torch 38 ms). Mapping 64 MiB on the Intel Xeon: 19.5-21 ms by one store per page,
// 13.5-14.7 ms in 1 MiB madvise calls. Mapped pages are left alone: populating them again
// costs about 7.6 us per MiB, the mincore() check 0.3 us. Elsewhere (not Linux, or a kernel
// before 5.14) the pages fault in as the kernel writes them.
inline void prefault_pages(const void* p, int64_t bytes) {
#ifdef __linux__
#ifdef MADV_POPULATE_WRITE
  constexpr int kMadvisePopulateWrite = MADV_POPULATE_WRITE;
#else
  constexpr int kMadvisePopulateWrite = 23;  // Linux 5.14; older kernels answer EINVAL
#endif
  if (bytes <= 0) return;
  constexpr uintptr_t kPage = 4096;
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) & ~(kPage - 1);
  const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + uintptr_t(bytes) + kPage - 1) & ~(kPage - 1);
  // A page in the middle: the first may be shared with the block before, already mapped.
  unsigned char resident = 0;
  void* middle = reinterpret_cast<void*>((first + (last - first) / 2) & ~(kPage - 1));
  if (mincore(middle, kPage, &resident) != 0 || (resident & 1)) return;
  madvise(reinterpret_cast<void*>(first), last - first, kMadvisePopulateWrite);
#else
  (void)p;
  (void)bytes;
#endif
}

// Calls run(in, out, len) for every contiguous run, with in/out pointing at its first
// element of each operand. A large output is prefaulted a block of kPrefaultBytes at a time,
// before its elements are computed, where its rows are dense (at least half its span written).
template <class scalar_t, int kIn, int kOut, class Run>
void for_each_run(int64_t rows, int64_t cols, const Operand* inputs, const Operand* outputs,
                  const Run& run) {
  constexpr int64_t kSize = sizeof(scalar_t);
  bool prefault = rows * cols * kOut * kSize >= kPrefaultBytes;
  for (int o = 0; o < kOut; ++o)
    prefault = prefault && (rows == 1 || (outputs[o].row_stride >= cols &&
                                          outputs[o].row_stride <= 2 * cols));
  const auto address = [&](const Operand& t, int64_t element) {
    return static_cast<const char*>(t.data) + ((element / cols) * t.row_stride + element % cols) * kSize;
  };
  // Calls run for the runs of elements [begin, end).
  const auto walk = [&](int64_t begin, int64_t end) {
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
  };
  at::parallel_for(0, rows * cols, kGrainSize, [&](int64_t begin, int64_t end) {
    if (!prefault) return walk(begin, end);
    const int64_t block = std::max<int64_t>(1, kPrefaultBytes / (kOut * kSize));
    for (int64_t b = begin; b < end; b += block) {
      const int64_t block_end = std::min(end, b + block);
      for (int o = 0; o < kOut; ++o) {
        const char* first = address(outputs[o], b);
        prefault_pages(first, address(outputs[o], block_end - 1) + kSize - first);
      }
      walk(b, block_end);
    }
  });
}

}  // namespace cpu
}  // namespace fusedact
