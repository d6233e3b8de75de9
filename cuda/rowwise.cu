// CUDA kernels of the row-wise shape class (rowwise.h): softmax, log_softmax, softmin and
// their backward over contiguous [outer, n, inner] operands, math in the op-math type.
//   inner == 1, n <= 1024: a warp per row with the row in registers (one read, one write).
//   inner == 1, longer rows: a block per row; one pass for the running maximum and sum of
//     exponentials (rescaled when the maximum grows), one pass to write; 128-bit access
//     when every row starts 16-byte aligned.
//   inner > 1: a thread per column; neighbouring threads read neighbouring columns.
#include <cuda_runtime.h>

#include <type_traits>

#include <fusedact/rowwise.h>

#include "elementwise.cuh"

namespace fusedact {
namespace cuda {
namespace {

constexpr int kWarp = 32;

template <class T>
__device__ __forceinline__ T nan_max(T a, T b) {
  return (a != a || a > b) ? a : b;  // a NaN anywhere wins, as torch's max
}

// exp(v - max), exactly 0 for v = -inf (also when max is -inf: no NaN from -inf - -inf).
template <class T>
__device__ __forceinline__ T exp_below(T v, T max) {
  return v == T(-INFINITY) ? T(0) : Math<T>::exp(v - max);
}

// The sum of exp(v - max) over the values seen so far, and their maximum.
template <class T>
struct RunningSum {
  T max, sum;
};

template <class T>
__device__ __forceinline__ RunningSum<T> combine(const RunningSum<T>& a, const RunningSum<T>& b) {
  const T m = nan_max(a.max, b.max);
  return {m, a.sum * exp_below(a.max, m) + b.sum * exp_below(b.max, m)};
}

template <class T>
__device__ __forceinline__ void absorb(RunningSum<T>& r, T v) {
  const T m = nan_max(r.max, v);
  if (!(m == r.max)) r.sum *= exp_below(r.max, m);
  r.sum += exp_below(v, m);
  r.max = m;
}

template <class T>
__device__ __forceinline__ T warp_max(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Combines every thread's RunningSum of the block; all threads get the result.
template <class T>
__device__ RunningSum<T> block_combine(RunningSum<T> r) {
  __shared__ T maxima[kWarp], sums[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2)
    r = combine(r, {__shfl_xor_sync(0xffffffffu, r.max, offset),
                    __shfl_xor_sync(0xffffffffu, r.sum, offset)});
  if (lane == 0) {
    maxima[warp] = r.max;
    sums[warp] = r.sum;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x / kWarp;
    r = lane < warps ? RunningSum<T>{maxima[lane], sums[lane]} : RunningSum<T>{T(-INFINITY), T(0)};
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset /= 2)
      r = combine(r, {__shfl_xor_sync(0xffffffffu, r.max, offset),
                      __shfl_xor_sync(0xffffffffu, r.sum, offset)});
    if (lane == 0) {
      maxima[0] = r.max;
      sums[0] = r.sum;
    }
  }
  __syncthreads();
  const RunningSum<T> result{maxima[0], sums[0]};
  __syncthreads();  // the next row reuses the buffers
  return result;
}

template <class T>
__device__ T block_sum(T v) {
  __shared__ T sums[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < int(blockDim.x / kWarp) ? sums[lane] : T(0);
    v = warp_sum(v);
    if (lane == 0) sums[0] = v;
  }
  __syncthreads();
  const T result = sums[0];
  __syncthreads();
  return result;
}

// ---- inner == 1, n <= 32 * kPerLane: a warp per row ----

template <class S, int kPerLane>
__global__ void forward_warp_rows(RowActivation act, const S* x, S* y, int64_t rows, int n) {
  using T = typename Convert<S>::opmath;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; row < rows;
       row += warps) {
    const S* xr = x + row * n;
    S* yr = y + row * n;
    T shifted[kPerLane], e[kPerLane];
    T m = T(-INFINITY);
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = lane + kWarp * k;
      shifted[k] = j < n ? act.signed_input(Convert<S>::to_opmath(xr[j])) : T(-INFINITY);
      m = nan_max(m, shifted[k]);
    }
    m = warp_max(m);
    T sum = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      shifted[k] -= m;
      e[k] = Math<T>::exp(shifted[k]);
      if (lane + kWarp * k < n) sum += e[k];
    }
    const T normalizer = act.normalizer(warp_sum(sum));
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = lane + kWarp * k;
      if (j < n) yr[j] = Convert<S>::from_opmath(act.output(shifted[k], e[k], normalizer));
    }
  }
}

template <class S, int kPerLane>
__global__ void backward_warp_rows(RowActivation act, const S* grad_output, const S* output,
                                   S* grad_input, int64_t rows, int n) {
  using T = typename Convert<S>::opmath;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; row < rows;
       row += warps) {
    const int64_t base = row * n;
    T g[kPerLane], out[kPerLane];
    T total = 0;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = lane + kWarp * k;
      g[k] = j < n ? Convert<S>::to_opmath(grad_output[base + j]) : T(0);
      out[k] = j < n ? Convert<S>::to_opmath(output[base + j]) : T(0);
      total = act.accumulate_backward(total, g[k], out[k]);
    }
    total = warp_sum(total);
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int j = lane + kWarp * k;
      if (j < n) grad_input[base + j] = Convert<S>::from_opmath(act.backward(g[k], out[k], total));
    }
  }
}

// ---- inner == 1, long rows: a block per row, W elements per access ----

template <class S, int W>
__global__ void forward_block_rows(RowActivation act, const S* x, S* y, int64_t rows, int64_t n) {
  using T = typename Convert<S>::opmath;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const S* xr = x + row * n;
    S* yr = y + row * n;
    RunningSum<T> r{T(-INFINITY), T(0)};
    for (int64_t j = int64_t(threadIdx.x) * W; j < n; j += int64_t(blockDim.x) * W) {
      const Vec<S, W> a = *reinterpret_cast<const Vec<S, W>*>(xr + j);
#pragma unroll
      for (int w = 0; w < W; ++w) absorb(r, act.signed_input(Convert<S>::to_opmath(a.v[w])));
    }
    r = block_combine(r);
    const T normalizer = act.normalizer(r.sum);
    for (int64_t j = int64_t(threadIdx.x) * W; j < n; j += int64_t(blockDim.x) * W) {
      const Vec<S, W> a = *reinterpret_cast<const Vec<S, W>*>(xr + j);
      Vec<S, W> b;
#pragma unroll
      for (int w = 0; w < W; ++w) {
        const T shifted = act.signed_input(Convert<S>::to_opmath(a.v[w])) - r.max;
        b.v[w] = Convert<S>::from_opmath(
            act.output(shifted, act.log ? shifted : Math<T>::exp(shifted), normalizer));
      }
      *reinterpret_cast<Vec<S, W>*>(yr + j) = b;
    }
  }
}

template <class S, int W>
__global__ void backward_block_rows(RowActivation act, const S* grad_output, const S* output,
                                    S* grad_input, int64_t rows, int64_t n) {
  using T = typename Convert<S>::opmath;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t base = row * n;
    T total = 0;
    for (int64_t j = int64_t(threadIdx.x) * W; j < n; j += int64_t(blockDim.x) * W) {
      const Vec<S, W> g = *reinterpret_cast<const Vec<S, W>*>(grad_output + base + j);
      const Vec<S, W> out = *reinterpret_cast<const Vec<S, W>*>(output + base + j);
#pragma unroll
      for (int w = 0; w < W; ++w)
        total = act.accumulate_backward(total, Convert<S>::to_opmath(g.v[w]),
                                        Convert<S>::to_opmath(out.v[w]));
    }
    total = block_sum(total);
    for (int64_t j = int64_t(threadIdx.x) * W; j < n; j += int64_t(blockDim.x) * W) {
      const Vec<S, W> g = *reinterpret_cast<const Vec<S, W>*>(grad_output + base + j);
      const Vec<S, W> out = *reinterpret_cast<const Vec<S, W>*>(output + base + j);
      Vec<S, W> dx;
#pragma unroll
      for (int w = 0; w < W; ++w)
        dx.v[w] = Convert<S>::from_opmath(act.backward(
            Convert<S>::to_opmath(g.v[w]), Convert<S>::to_opmath(out.v[w]), total));
      *reinterpret_cast<Vec<S, W>*>(grad_input + base + j) = dx;
    }
  }
}

// ---- inner > 1: a thread per column of [outer, n, inner] ----

template <class S>
__global__ void forward_columns(RowActivation act, const S* x, S* y, int64_t outer, int64_t n,
                                int64_t inner) {
  using T = typename Convert<S>::opmath;
  const int64_t columns = outer * inner;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < columns;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
    RunningSum<T> r{T(-INFINITY), T(0)};
    for (int64_t j = 0; j < n; ++j)
      absorb(r, act.signed_input(Convert<S>::to_opmath(x[base + j * inner])));
    const T normalizer = act.normalizer(r.sum);
    for (int64_t j = 0; j < n; ++j) {
      const T shifted = act.signed_input(Convert<S>::to_opmath(x[base + j * inner])) - r.max;
      y[base + j * inner] = Convert<S>::from_opmath(
          act.output(shifted, act.log ? shifted : Math<T>::exp(shifted), normalizer));
    }
  }
}

template <class S>
__global__ void backward_columns(RowActivation act, const S* grad_output, const S* output,
                                 S* grad_input, int64_t outer, int64_t n, int64_t inner) {
  using T = typename Convert<S>::opmath;
  const int64_t columns = outer * inner;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < columns;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = i / inner, base = o * n * inner + (i - o * inner);
    T total = 0;
    for (int64_t j = 0; j < n; ++j)
      total = act.accumulate_backward(total, Convert<S>::to_opmath(grad_output[base + j * inner]),
                                      Convert<S>::to_opmath(output[base + j * inner]));
    for (int64_t j = 0; j < n; ++j) {
      const int64_t k = base + j * inner;
      grad_input[k] = Convert<S>::from_opmath(act.backward(
          Convert<S>::to_opmath(grad_output[k]), Convert<S>::to_opmath(output[k]), total));
    }
  }
}

// ---- launch ----

int multiprocessors() {
  int device = 0, sms = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  return sms > 0 ? sms : 1;
}

int64_t grid_for(int64_t work, int threads) {
  return std::max<int64_t>(1, std::min<int64_t>((work + threads - 1) / threads,
                                                int64_t(multiprocessors()) * 32));
}

// Threads of a block per long row: about 8 accesses per thread, 128 to 512.
int block_threads(int64_t accesses) {
  int threads = 128;
  while (threads < 512 && int64_t(threads) * 8 < accesses) threads *= 2;
  return threads;
}

// Calls launch(std::integral_constant<int, kPerLane>) for the smallest kPerLane in
// 1, 2, 4, ..., 32 with n <= 32 * kPerLane.
template <class Launch>
void with_lanes_for(int64_t n, const Launch& launch) {
  if (n <= 32) return launch(std::integral_constant<int, 1>{});
  if (n <= 64) return launch(std::integral_constant<int, 2>{});
  if (n <= 128) return launch(std::integral_constant<int, 4>{});
  if (n <= 256) return launch(std::integral_constant<int, 8>{});
  if (n <= 512) return launch(std::integral_constant<int, 16>{});
  return launch(std::integral_constant<int, 32>{});
}

constexpr int64_t kMaxWarpRow = 32 * kWarp;
constexpr int kWarpRowThreads = 256;

template <class S>
const char* forward_typed(RowActivation act, const S* x, S* y, int64_t outer, int64_t n,
                          int64_t inner, cudaStream_t stream) {
  if (inner > 1) {
    const int threads = 256;
    forward_columns<S><<<grid_for(outer * inner, threads), threads, 0, stream>>>(act, x, y, outer, n, inner);
    return launch_error();
  }
  if (n <= kMaxWarpRow) {
    with_lanes_for(n, [&](auto per_lane) {
      forward_warp_rows<S, decltype(per_lane)::value>
          <<<grid_for(outer * kWarp, kWarpRowThreads), kWarpRowThreads, 0, stream>>>(act, x, y, outer, int(n));
    });
    return launch_error();
  }
  constexpr int W = 16 / sizeof(S);
  const int64_t blocks = std::min<int64_t>(outer, int64_t(multiprocessors()) * 8);
  if (aligned16(x) && aligned16(y) && n % W == 0) {
    forward_block_rows<S, W><<<blocks, block_threads(n / W), 0, stream>>>(act, x, y, outer, n);
  } else {
    forward_block_rows<S, 1><<<blocks, block_threads(n), 0, stream>>>(act, x, y, outer, n);
  }
  return launch_error();
}

template <class S>
const char* backward_typed(RowActivation act, const S* grad_output, const S* output, S* grad_input,
                           int64_t outer, int64_t n, int64_t inner, cudaStream_t stream) {
  if (inner > 1) {
    const int threads = 256;
    backward_columns<S><<<grid_for(outer * inner, threads), threads, 0, stream>>>(
        act, grad_output, output, grad_input, outer, n, inner);
    return launch_error();
  }
  if (n <= kMaxWarpRow) {
    with_lanes_for(n, [&](auto per_lane) {
      backward_warp_rows<S, decltype(per_lane)::value>
          <<<grid_for(outer * kWarp, kWarpRowThreads), kWarpRowThreads, 0, stream>>>(
              act, grad_output, output, grad_input, outer, int(n));
    });
    return launch_error();
  }
  constexpr int W = 16 / sizeof(S);
  const int64_t blocks = std::min<int64_t>(outer, int64_t(multiprocessors()) * 8);
  if (aligned16(grad_output) && aligned16(output) && aligned16(grad_input) && n % W == 0) {
    backward_block_rows<S, W><<<blocks, block_threads(n / W), 0, stream>>>(
        act, grad_output, output, grad_input, outer, n);
  } else {
    backward_block_rows<S, 1><<<blocks, block_threads(n), 0, stream>>>(
        act, grad_output, output, grad_input, outer, n);
  }
  return launch_error();
}

}  // namespace

const char* launch_rowwise_forward(RowActivation act, ScalarKind kind, const void* input,
                                   void* output, int64_t outer, int64_t n, int64_t inner,
                                   void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (kind) {
    case ScalarKind::Float:
      return forward_typed(act, static_cast<const float*>(input), static_cast<float*>(output), outer, n, inner, s);
    case ScalarKind::Double:
      return forward_typed(act, static_cast<const double*>(input), static_cast<double*>(output), outer, n, inner, s);
    case ScalarKind::Half:
      return forward_typed(act, static_cast<const __half*>(input), static_cast<__half*>(output), outer, n, inner, s);
    case ScalarKind::BFloat16:
      return forward_typed(act, static_cast<const __nv_bfloat16*>(input), static_cast<__nv_bfloat16*>(output),
                           outer, n, inner, s);
    default:
      return "fusedact: no row-wise kernel for this scalar type";
  }
}

const char* launch_rowwise_backward(RowActivation act, ScalarKind kind, const void* grad_output,
                                    const void* output, void* grad_input, int64_t outer,
                                    int64_t n, int64_t inner, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (kind) {
    case ScalarKind::Float:
      return backward_typed(act, static_cast<const float*>(grad_output), static_cast<const float*>(output),
                            static_cast<float*>(grad_input), outer, n, inner, s);
    case ScalarKind::Double:
      return backward_typed(act, static_cast<const double*>(grad_output), static_cast<const double*>(output),
                            static_cast<double*>(grad_input), outer, n, inner, s);
    case ScalarKind::Half:
      return backward_typed(act, static_cast<const __half*>(grad_output), static_cast<const __half*>(output),
                            static_cast<__half*>(grad_input), outer, n, inner, s);
    case ScalarKind::BFloat16:
      return backward_typed(act, static_cast<const __nv_bfloat16*>(grad_output),
                            static_cast<const __nv_bfloat16*>(output),
                            static_cast<__nv_bfloat16*>(grad_input), outer, n, inner, s);
    default:
      return "fusedact: no row-wise kernel for this scalar type";
  }
}

}  // namespace cuda
}  // namespace fusedact
