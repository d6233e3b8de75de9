// In-cache throughput of the AVX-512 float kernels alone (run_contiguous, 1 thread, no
// dispatcher or allocation): ns per element, best of 400 runs over 32768 normal(0, 3) values.
// For A/B comparisons of functor or vec_float_math changes; build it once per version:
//   TI=.venv/lib/python3.11/site-packages/torch/include
//   g++ -O3 -std=c++17 -fopenmp -Icsrc/include -I$TI -I$TI/torch/csrc/api/include \
//     tools/kernel_bench.cpp -o /tmp/kernel_bench -L$TI/../lib -ltorch_cpu -lc10 \
//     -Wl,-rpath,$PWD/$TI/../lib && /tmp/kernel_bench
#define FUSEDACT_SIMD_AVX512
#include "../csrc/cpu/vectorized_impl.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

// The benchmark's own code must be compiled for AVX-512 too: at::vec's inline functions are
// called, not inlined, from code outside the target, which makes them far slower.
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

namespace {

using namespace fusedact;

constexpr int64_t kElements = 32768;
std::vector<float> first(kElements), second(kElements), out(kElements);

template <class Kernel>
void time_kernel(const std::string& name, const Kernel& kernel) {
  const float* in[2] = {first.data(), second.data()};  // backward: (grad_output, input)
  float* outputs[1] = {out.data()};
  double best = 1e30;
  for (int run = 0; run < 400; ++run) {
    const auto start = std::chrono::steady_clock::now();
    cpu::AVX512::run_contiguous<float>(kernel, in, outputs, kElements);
    const auto stop = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(stop - start).count());
  }
  std::printf("%-18s %.3f\n", name.c_str(), best / kElements);
}

template <class Act>
void forward_and_backward(const std::string& name, const Act& act) {
  time_kernel(name + " fwd", UnaryForward<Act>{act});
  time_kernel(name + " bwd", UnaryBackward<UnaryDerivatives<Act>>{unary_derivatives(act)});
}

}  // namespace

int main() {
  std::mt19937 generator(0);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (int64_t i = 0; i < kElements; ++i) {
    first[i] = normal(generator);
    second[i] = normal(generator);
  }
  std::printf("op ns/element\n");
  forward_and_backward("relu", Relu{});
  forward_and_backward("hardswish", Hardswish{});
  forward_and_backward("hardsigmoid", Hardsigmoid{});
  forward_and_backward("hardtanh", Hardtanh{});
  forward_and_backward("tanh", Tanh{});
  forward_and_backward("sigmoid", Sigmoid{});
  forward_and_backward("silu", Swish{});
  forward_and_backward("gelu", Gelu{});
  forward_and_backward("gelu_tanh", Gelu{true});
  forward_and_backward("elu", Elu{});
  forward_and_backward("logsigmoid", Logsigmoid{});
  forward_and_backward("softplus", Softplus{});
  forward_and_backward("mish", Mish{});
  return 0;
}
