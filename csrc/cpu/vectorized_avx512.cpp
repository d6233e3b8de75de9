// The SIMD CPU kernels for AVX-512 (F, BW, VL, DQ) + FMA: see vectorized.h and vectorized_impl.h.
#define FUSEDACT_SIMD_AVX512
#include "vectorized_impl.h"
