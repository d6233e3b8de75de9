// Max and mean ulp error of vec_float_math::exp against double exp, at 1e8 points evenly
// spaced in [-87.3, 88.7]: the AVX-512 branch, or with -DFUSEDACT_SIMD_AVX2 the AVX2 one.
// Build and run like tools/kernel_bench.cpp:
//   TI=.venv/lib/python3.11/site-packages/torch/include
//   g++ -O3 -std=c++17 -fopenmp -Icsrc/include -I$TI -I$TI/torch/csrc/api/include \
//     tools/exp_ulp.cpp -o /tmp/exp_ulp -L$TI/../lib -ltorch_cpu -lc10 \
//     -Wl,-rpath,$PWD/$TI/../lib && /tmp/exp_ulp
#ifndef FUSEDACT_SIMD_AVX2
#define FUSEDACT_SIMD_AVX512
#endif
#include "../csrc/cpu/vectorized_impl.h"

#include <cmath>
#include <cstdio>

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")

int main() {
  constexpr long kPoints = 100000000;
  double max_ulp = 0, sum_ulp = 0;
  float worst = 0;
  constexpr int kLanes = at::vec::Vectorized<float>::size();
  for (long start = 0; start < kPoints; start += kLanes) {
    float x[kLanes], y[kLanes];
    for (int i = 0; i < kLanes; ++i) x[i] = -87.3f + (start + i) * (176.f / kPoints);
    fusedact::vec_float_math::exp(at::vec::Vectorized<float>::loadu(x)).store(y);
    for (int i = 0; i < kLanes; ++i) {
      const double exact = std::exp(static_cast<double>(x[i]));
      const double ulp = std::ldexp(1.0, std::ilogb(exact) - 23);
      const double error = std::fabs(y[i] - exact) / ulp;
      sum_ulp += error;
      if (error > max_ulp) max_ulp = error, worst = x[i];
    }
  }
  std::printf("exp: max %.3f ulp (at x = %g), mean %.4f ulp, %ld points\n", max_ulp, worst,
              sum_ulp / kPoints, kPoints);
}
