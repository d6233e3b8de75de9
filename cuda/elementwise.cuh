// The generic CUDA kernel: one elementwise map (a mode functor of functors.h) over
// [rows, cols] with per-operand row strides. Torch-free: raw pointers, the caller's stream.
//
// Access is 128-bit (16 / sizeof(scalar) elements per load and store) whenever every
// pointer is 16-byte aligned and, with several rows, cols and every row stride are
// multiples of the vector width; a scalar tail covers numel % width of a single row.
// Offsets are 64-bit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include <fusedact/elementwise.h>
#include <fusedact/functors.h>

namespace fusedact {
namespace cuda {

// Storage type S <-> op-math type: float for the half types, the type itself otherwise
// (float, double and the integer types of the ops that take integers).
template <class S>
struct Convert {
  using opmath = S;
  __device__ __forceinline__ static S to_opmath(S v) { return v; }
  __device__ __forceinline__ static S from_opmath(S v) { return v; }
};
template <>
struct Convert<__half> {
  using opmath = float;
  __device__ __forceinline__ static float to_opmath(__half v) { return __half2float(v); }
  __device__ __forceinline__ static __half from_opmath(float v) { return __float2half_rn(v); }
};
template <>
struct Convert<__nv_bfloat16> {
  using opmath = float;
  __device__ __forceinline__ static float to_opmath(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ __forceinline__ static __nv_bfloat16 from_opmath(float v) {
    return __float2bfloat16_rn(v);
  }
};

template <class S, int N>
struct alignas(sizeof(S) * N) Vec {
  S v[N];
};

template <int N>
struct Operands {
  void* data[N];
  int64_t row_stride[N];
};

// Maps elements [i, i + W) (within one row when kRowed) of every operand.
template <class S, int W, bool kRowed, class Kernel>
__device__ __forceinline__ void map_elements(const Kernel& kernel, int64_t i, int64_t cols,
                                             const Operands<Kernel::kInputs>& in,
                                             const Operands<Kernel::kOutputs>& out) {
  using T = typename Convert<S>::opmath;
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  int64_t row = 0, col = i;
  if (kRowed) {
    row = i / cols;
    col = i - row * cols;
  }
  Vec<S, W> a[kIn], b[kOut];
#pragma unroll
  for (int k = 0; k < kIn; ++k)
    a[k] = *reinterpret_cast<const Vec<S, W>*>(static_cast<const S*>(in.data[k]) +
                                               row * in.row_stride[k] + col);
#pragma unroll
  for (int j = 0; j < W; ++j) {
    T x[kIn], y[kOut];
#pragma unroll
    for (int k = 0; k < kIn; ++k) x[k] = Convert<S>::to_opmath(a[k].v[j]);
    kernel(x, y);
#pragma unroll
    for (int k = 0; k < kOut; ++k) b[k].v[j] = Convert<S>::from_opmath(y[k]);
  }
#pragma unroll
  for (int k = 0; k < kOut; ++k)
    *reinterpret_cast<Vec<S, W>*>(static_cast<S*>(out.data[k]) + row * out.row_stride[k] + col) =
        b[k];
}

template <class S, int W, bool kRowed, class Kernel>
__global__ void elementwise_kernel(Kernel kernel, int64_t total, int64_t cols,
                                   Operands<Kernel::kInputs> in, Operands<Kernel::kOutputs> out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t vectors = total / W;
  for (int64_t v = first; v < vectors; v += stride)
    map_elements<S, W, kRowed>(kernel, v * W, cols, in, out);
  if (W > 1) {
    // Scalar tail; only a single row (kRowed launches have cols % W == 0) reaches it.
    const int64_t i = vectors * W + first;
    if (i < total) map_elements<S, 1, kRowed>(kernel, i, cols, in, out);
  }
}

inline const char* launch_error() {
  const cudaError_t error = cudaGetLastError();
  return error == cudaSuccess ? nullptr : cudaGetErrorString(error);
}

inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class S, class Kernel>
const char* launch_typed(const Kernel& kernel, int64_t rows, int64_t cols,
                         const Operand* inputs, const Operand* outputs, cudaStream_t stream) {
  constexpr int kIn = Kernel::kInputs, kOut = Kernel::kOutputs;
  constexpr int kWidth = 16 / sizeof(S);
  const bool rowed = Kernel::kMultiRow && rows > 1;
  Operands<kIn> in;
  Operands<kOut> out;
  bool vectorizable = !rowed || cols % kWidth == 0;
  for (int k = 0; k < kIn; ++k) {
    in.data[k] = inputs[k].data;
    in.row_stride[k] = inputs[k].row_stride;
    vectorizable &= aligned16(in.data[k]) && (!rowed || in.row_stride[k] % kWidth == 0);
  }
  for (int k = 0; k < kOut; ++k) {
    out.data[k] = outputs[k].data;
    out.row_stride[k] = outputs[k].row_stride;
    vectorizable &= aligned16(out.data[k]) && (!rowed || out.row_stride[k] % kWidth == 0);
  }

  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  constexpr int kThreads = 256;
  const int64_t total = rows * cols;
  const int64_t work = vectorizable ? (total + kWidth - 1) / kWidth : total;
  // Enough blocks to fill every SM several times over; the grid-stride loop does the rest.
  const int64_t blocks = std::max<int64_t>(
      1, std::min<int64_t>((work + kThreads - 1) / kThreads, int64_t(std::max(sms, 1)) * 32));

  if (vectorizable) {
    if constexpr (Kernel::kMultiRow) {
      if (rowed) {
        elementwise_kernel<S, kWidth, true><<<blocks, kThreads, 0, stream>>>(kernel, total, cols, in, out);
        return launch_error();
      }
    }
    elementwise_kernel<S, kWidth, false><<<blocks, kThreads, 0, stream>>>(kernel, total, cols, in, out);
  } else {
    if constexpr (Kernel::kMultiRow) {
      if (rowed) {
        elementwise_kernel<S, 1, true><<<blocks, kThreads, 0, stream>>>(kernel, total, cols, in, out);
        return launch_error();
      }
    }
    elementwise_kernel<S, 1, false><<<blocks, kThreads, 0, stream>>>(kernel, total, cols, in, out);
  }
  return launch_error();
}

template <class Kernel>
const char* launch_elementwise(const Kernel& kernel, ScalarKind kind, int64_t rows, int64_t cols,
                               const Operand* inputs, const Operand* outputs, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (kind) {
    case ScalarKind::Float: return launch_typed<float>(kernel, rows, cols, inputs, outputs, s);
    case ScalarKind::Double: return launch_typed<double>(kernel, rows, cols, inputs, outputs, s);
    case ScalarKind::Half: return launch_typed<__half>(kernel, rows, cols, inputs, outputs, s);
    case ScalarKind::BFloat16:
      return launch_typed<__nv_bfloat16>(kernel, rows, cols, inputs, outputs, s);
    default:
      break;
  }
  if constexpr (KernelTakesIntegers<Kernel>::value) {
    switch (kind) {
      case ScalarKind::Byte: return launch_typed<unsigned char>(kernel, rows, cols, inputs, outputs, s);
      case ScalarKind::Char: return launch_typed<signed char>(kernel, rows, cols, inputs, outputs, s);
      case ScalarKind::Short: return launch_typed<short>(kernel, rows, cols, inputs, outputs, s);
      case ScalarKind::Int: return launch_typed<int>(kernel, rows, cols, inputs, outputs, s);
      case ScalarKind::Long: return launch_typed<long>(kernel, rows, cols, inputs, outputs, s);
      default: break;
    }
  }
  return "fusedact: no kernel for this scalar type";
}

}  // namespace cuda
}  // namespace fusedact

// Instantiates launch_elementwise for a mode functor type by taking its address (inside a
// `used` table, see unary.cu): unlike an explicit instantiation, doing so twice is fine,
// and op-table rows may share a functor type (elu, selu and celu are all Elu).
#define FUSEDACT_LAUNCHER(...) \
  reinterpret_cast<const void*>(&fusedact::cuda::launch_elementwise<__VA_ARGS__>),
