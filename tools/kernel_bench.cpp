// In-cache throughput of the AVX-512 kernels alone (run_contiguous, 1 thread, no dispatcher
// or allocation), unary and gated, float32 and bfloat16: ns per (output) element, best of
// 400 runs over 32768 normal(0, 3) values (normal(0, STD) with the argument STD).
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
template <class S>
struct Buffers {
  // unary backward: (grad_output, input) -> grad_input; gated backward: (grad_output,
  // gate, up = first) -> (grad_gate, grad_up)
  std::vector<S> first, second, out, second_out;
};
Buffers<float> floats;
Buffers<c10::BFloat16> bfloat16s;

template <class S, class Kernel>
double ns_per_element(const Buffers<S>& buffers, const Kernel& kernel) {
  const S* in[3] = {buffers.first.data(), buffers.second.data(), buffers.first.data()};
  S* outputs[2] = {const_cast<S*>(buffers.out.data()), const_cast<S*>(buffers.second_out.data())};
  double best = 1e30;
  for (int run = 0; run < 400; ++run) {
    const auto start = std::chrono::steady_clock::now();
    cpu::AVX512::run_contiguous<S>(kernel, in, outputs, kElements);
    const auto stop = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(stop - start).count());
  }
  return best / kElements;
}

template <class Kernel>
void time_kernel(const std::string& name, const Kernel& kernel) {
  std::printf("%-18s %8.3f %8.3f\n", name.c_str(), ns_per_element(floats, kernel),
              ns_per_element(bfloat16s, kernel));
}

template <class Act>
void forward_and_backward(const std::string& name, const Act& act) {
  time_kernel(name + " fwd", UnaryForward<Act>{act});
  time_kernel(name + " bwd", UnaryBackward<UnaryDerivatives<Act>>{unary_derivatives(act)});
}

// forward: gate = first, up = second; backward: grad_output = first, gate = second, up = first
template <class Act>
void gated_forward_and_backward(const std::string& name, const Act& act) {
  time_kernel(name + " fwd", GatedForward<Act>{act});
  time_kernel(name + " bwd", GatedBackward<Act>{act});
}

}  // namespace

int main(int argc, char** argv) {
  std::mt19937 generator(0);
  std::normal_distribution<float> normal(0.f, argc > 1 ? std::stof(argv[1]) : 3.f);
  for (auto* buffers : {&floats.first, &floats.second}) {
    buffers->resize(kElements);
    for (float& v : *buffers) v = normal(generator);
  }
  floats.out.resize(kElements);
  floats.second_out.resize(kElements);
  bfloat16s.first.assign(floats.first.begin(), floats.first.end());
  bfloat16s.second.assign(floats.second.begin(), floats.second.end());
  bfloat16s.out.resize(kElements);
  bfloat16s.second_out.resize(kElements);
  std::printf("op                  float32 bfloat16 (ns/element, normal(0, %s) inputs)\n",
              argc > 1 ? argv[1] : "3");
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
  gated_forward_and_backward("glu", Sigmoid{});
  gated_forward_and_backward("swiglu", Swish{});
  gated_forward_and_backward("geglu", Gelu{});
  gated_forward_and_backward("geglu_tanh", Gelu{true});
  return 0;
}
