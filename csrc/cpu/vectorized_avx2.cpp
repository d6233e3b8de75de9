// The SIMD CPU kernels for AVX2 + FMA (see vectorized.h). Headers compiled for every CPU
// come first; the target pragma covers only the vector code after it.
#include "simd.h"
#if FUSEDACT_CPU_SIMD
// torch's headers first, compiled for every CPU; then, for the target, at::vec and the
// functors (templates take the target of the place they are defined).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <tuple>
#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // a note on vector arguments, not a problem here
#pragma GCC diagnostic ignored "-Wunknown-pragmas"  // at::vec has clang/CUDA loop pragmas
#pragma GCC target("avx2,fma,f16c")
// GCC's target pragma does not define the feature macros in C++; SLEEF's header needs them.
#ifndef __AVX__
#define __AVX__ 1
#endif
#ifndef __AVX2__
#define __AVX2__ 1
#endif
#ifndef __FMA__
#define __FMA__ 1
#endif
#ifndef __F16C__
#define __F16C__ 1
#endif
#define CPU_CAPABILITY AVX2
#define CPU_CAPABILITY_AVX2
#include "vectorized_impl.h"
static_assert(at::vec::Vectorized<float>::size() == 8, "at::vec was not built for this target");
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
