// The AVX-512 row kernels (softmax, log_softmax forward and backward, dim = -1) against
// torch's own CPU kernels (at::_softmax_out and friends) in one process, 1 thread, outputs
// preallocated (unless `fresh`, below): no dispatcher of ours, no page faults. Each rep times
// fusedact then torch, alternating which goes first; median of the reps, ns per element, and
// torch / fusedact.
// Shapes: in cache (2048 x 128, 64 x 4096) and from memory (4096 x 4096: 64 MiB float32).
// An argument NAME runs only the rows whose name contains it ("softmax bwd"; "" for all).
// A second argument `fresh` gives every call a new output instead (at::empty_like for ours,
// torch's allocating at::_softmax and friends): the first touch of its pages, as in a model.
// For A/B comparisons of rowwise_kernel.h changes; build it once per version:
//   TI=.venv/lib/python3.11/site-packages/torch/include
//   g++ -O3 -std=c++17 -fopenmp -Icsrc/include -I$TI -I$TI/torch/csrc/api/include \
//     tools/row_bench.cpp -o /tmp/row_bench -L$TI/../lib -ltorch_cpu -lc10 \
//     -Wl,-rpath,$PWD/$TI/../lib && /tmp/row_bench
#define FUSEDACT_SIMD_AVX512
#include "../csrc/cpu/vectorized_impl.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

// As in kernel_bench.cpp: at::vec's inline functions must be compiled for AVX-512 here too.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace {

using namespace fusedact;

double seconds(const std::function<void()>& fn) {
  const auto start = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

const char* only = "";  // argv[1]: only the rows whose name contains it (for perf)
bool fresh = false;     // argv[2] == "fresh": a new output per call

void compare(const char* name, int64_t rows, int64_t n, at::ScalarType dtype, int reps,
             const std::function<void()>& ours, const std::function<void()>& torch) {
  if (std::string(name).find(only) == std::string::npos) return;
  std::vector<double> a, b;
  ours();
  torch();
  for (int rep = 0; rep < reps; ++rep) {
    if (rep % 2 == 0) {
      a.push_back(seconds(ours));
      b.push_back(seconds(torch));
    } else {
      b.push_back(seconds(torch));
      a.push_back(seconds(ours));
    }
  }
  const double elements = double(rows) * n, ours_s = median(a), torch_s = median(b);
  std::printf("%-16s %-9s %6lld x %-6lld ours %6.3f torch %6.3f ns/element  x%.2f\n", name,
              c10::toString(dtype), (long long)rows, (long long)n, ours_s / elements * 1e9,
              torch_s / elements * 1e9, torch_s / ours_s);
}

template <class S>
void shape(int64_t rows, int64_t n, at::ScalarType dtype, int reps) {
  const at::Tensor x = at::randn({rows, n}).to(dtype), g = at::randn({rows, n}).to(dtype);
  at::Tensor y = at::empty_like(x), dx = at::empty_like(x);
  const at::Tensor softmax = at::_softmax(x, -1, false);
  const at::Tensor log_softmax = at::_log_softmax(x, -1, false);
  const S* xp = x.data_ptr<S>();
  const S* gp = g.data_ptr<S>();
  for (bool log : {false, true}) {
    const RowActivation act{log, false};
    compare(log ? "log_softmax fwd" : "softmax fwd", rows, n, dtype, reps,
            [&] {
              const at::Tensor out = fresh ? at::empty_like(y) : y;
              cpu::AVX512::rowwise_forward<S>(act, xp, out.data_ptr<S>(), rows, n, 1);
            },
            [&] {
              if (fresh) {
                (log ? at::_log_softmax(x, -1, false) : at::_softmax(x, -1, false));
              } else {
                log ? at::_log_softmax_out(y, x, -1, false) : at::_softmax_out(y, x, -1, false);
              }
            });
    const at::Tensor& out = log ? log_softmax : softmax;
    const S* op = out.data_ptr<S>();
    compare(log ? "log_softmax bwd" : "softmax bwd", rows, n, dtype, reps,
            [&] {
              const at::Tensor grad_input = fresh ? at::empty_like(dx) : dx;
              cpu::AVX512::rowwise_backward<S>(act, gp, op, grad_input.data_ptr<S>(), rows, n, 1);
            },
            [&] {
              if (fresh) {
                (log ? at::_log_softmax_backward_data(g, out, -1, dtype)
                     : at::_softmax_backward_data(g, out, -1, dtype));
              } else {
                log ? at::_log_softmax_backward_data_out(dx, g, out, -1, dtype)
                    : at::_softmax_backward_data_out(dx, g, out, -1, dtype);
              }
            });
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) only = argv[1];
  fresh = argc > 2 && std::string(argv[2]) == "fresh";
  at::set_num_threads(1);
  for (auto [rows, n, reps] : {std::tuple<int64_t, int64_t, int>{2048, 128, 301},
                               {64, 4096, 301}, {4096, 4096, 21}}) {
    shape<float>(rows, n, at::kFloat, reps);
    shape<c10::BFloat16>(rows, n, at::kBFloat16, reps);
  }
}
