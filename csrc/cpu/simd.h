// Whether this build has the SIMD CPU kernels: GCC on x86-64 (their translation units
// select the instruction set with GCC's target pragma).
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FUSEDACT_CPU_SIMD 1
#else
#define FUSEDACT_CPU_SIMD 0
#endif
