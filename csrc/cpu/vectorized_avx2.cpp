// The SIMD CPU kernels for AVX2 + FMA: see vectorized.h and vectorized_impl.h.
#define FUSEDACT_SIMD_AVX2
#include "vectorized_impl.h"
