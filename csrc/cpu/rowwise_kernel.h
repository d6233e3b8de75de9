// The CPU row kernels (softmax, log_softmax, softmin and their backward), written once
// against a lane policy L so the SIMD units (vectorized_impl.h, L = SIMD vectors) and the
// scalar fallback (rowwise.h, L = ScalarLanes) run the same algorithm. Operands are
// contiguous [outer, n, inner]:
//   inner == 1: rows of n contiguous elements, parallel over rows; SIMD along the row.
//   inner > 1: SIMD across L::kStep neighbouring columns, each lane its own row (no
//   horizontal reduction), parallel over (outer, column block).
//
// A policy L provides: opmath and V (the op-math type and the values a block loads into),
// kParts values of kPartLanes lanes per block of kStep elements; load/store of a block's
// first `count` elements (unloaded lanes are 0), and of op-math values (load_opmath,
// store_opmath); splat; tail(fill, v, lanes) (lanes past `lanes` replaced by fill); max (a
// NaN may or may not win: a NaN anywhere in a row makes its sum NaN either way); reduce_max
// and reduce_sum of one V in lane order; and Math<V> for exp_nonpositive and log
// (s*x - max is <= 0, or NaN from x - +inf or -inf - -inf).
// `act` travels by value: a local that the stores cannot change, so the branches on its
// flags can leave the loops.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include <fusedact/rowwise.h>

#include "runs.h"  // prefault_pages

namespace fusedact {
namespace cpu {
namespace rowwise {

// Elements per parallel task.
constexpr int64_t kGrainElements = 32768;
// Terms summed one after another at the leaves of a pairwise sum.
constexpr int64_t kPairwiseLeaf = 16;
// Short rows are handled up to kRowChunk at a time, as many as make kRowChunkElements
// (backward_rows: long rows would leave the cache between the passes).
constexpr int64_t kRowChunk = 8, kRowChunkElements = 1024;

// sum = the sum of add(j, sum) over j in [begin, end) (each call adds term j into the P
// values it is given), summed pairwise: the rounding error grows like log(n), not n, and
// the order depends only on n (results are bitwise the same for the same row anywhere).
template <class L, class Add>
void pairwise_sum(int64_t begin, int64_t end, const Add& add, typename L::V* sum) {
  using V = typename L::V;
  constexpr int P = L::kParts;
  if (end - begin <= kPairwiseLeaf) {
    // Four interleaved partial sums: four independent add chains instead of one. Four named
    // arrays, not one V[4][P] indexed by a loop variable: GCC kept that in memory and stored
    // it after every term (tools/row_bench.cpp: softmax backward over rows of 128 floats
    // 0.62x -> 0.66x torch, bfloat16 0.72x -> 0.81x).
    V p0[P], p1[P], p2[P], p3[P];
    for (int p = 0; p < P; ++p) p0[p] = p1[p] = p2[p] = p3[p] = L::splat(0);
    int64_t j = begin;
    for (; j + 4 <= end; j += 4) {
      add(j, p0);
      add(j + 1, p1);
      add(j + 2, p2);
      add(j + 3, p3);
    }
    for (; j < end; ++j) add(j, p0);  // the last < 4 terms: one copy of add's code, not three
    for (int p = 0; p < P; ++p) sum[p] = (p0[p] + p1[p]) + (p2[p] + p3[p]);
    return;
  }
  const int64_t middle = begin + (end - begin) / 2;
  typename L::V right[P];
  pairwise_sum<L>(begin, middle, add, sum);
  pairwise_sum<L>(middle, end, add, right);
  for (int p = 0; p < P; ++p) sum[p] = sum[p] + right[p];
}

// Lanes of part `part` within the first `count` elements of a block.
template <class L>
int64_t part_lanes(int64_t count, int part) {
  return std::clamp<int64_t>(count - part * L::kPartLanes, 0, L::kPartLanes);
}

// One row of n contiguous elements.
template <class L, class Act, class scalar_t>
void forward_row(Act, const scalar_t* x, scalar_t* y, int64_t n) {
  static constexpr const RowActivation& act = Act::value;  // static: lambdas use it uncaptured
  using V = typename L::V;
  using opmath = typename L::opmath;
  constexpr int P = L::kParts;
  // softmax keeps exp(s*x - m) between the passes: in y where y holds op-math values, else in
  // a per-thread buffer of op-math values
  constexpr bool keep_exp = !act.log;
  opmath* exps = nullptr;
  if (keep_exp) {
    if constexpr (std::is_same_v<scalar_t, opmath>) {
      exps = y;
    } else {
      thread_local std::vector<opmath> buffer;
      if (buffer.size() < size_t(n)) buffer.resize(n);
      exps = buffer.data();
    }
  }
  const V minus_inf = L::splat(-std::numeric_limits<opmath>::infinity());

  V running_max = minus_inf;
  for (int64_t j = 0; j < n; j += L::kStep) {
    const int64_t count = std::min(L::kStep, n - j);
    V v[P];
    L::load(x + j, count, v);
    for (int p = 0; p < P; ++p)
      running_max = L::max(running_max,
                           L::tail(minus_inf, act.signed_input(v[p]), part_lanes<L>(count, p)));
  }
  const V row_max = L::splat(L::reduce_max(running_max));

  V sum[P];
  // Captured by value, as in backward_row_total.
  const int64_t blocks = (n + L::kStep - 1) / L::kStep;
  pairwise_sum<L>(0, blocks, [x, exps, n, row_max](int64_t block, V* partial) {
    const int64_t j = block * L::kStep, count = std::min(L::kStep, n - j);
    V v[P];
    L::load(x + j, count, v);
    for (int p = 0; p < P; ++p) {
      v[p] = Math<V>::exp_nonpositive(act.signed_input(v[p]) - row_max);
      partial[p] = partial[p] + L::tail(L::splat(0), v[p], part_lanes<L>(count, p));
    }
    if (keep_exp) L::store_opmath(exps + j, count, v);
  }, sum);
  for (int p = 1; p < P; ++p) sum[0] = sum[0] + sum[p];
  const V normalizer = L::splat(act.normalizer(L::reduce_sum(sum[0])));

  for (int64_t j = 0; j < n; j += L::kStep) {
    const int64_t count = std::min(L::kStep, n - j);
    V v[P], e[P];
    L::load(x + j, count, v);
    if (keep_exp) L::load_opmath(exps + j, count, e);
    for (int p = 0; p < P; ++p) {
      const V shifted = act.signed_input(v[p]) - row_max;
      if (!keep_exp) e[p] = shifted;  // log_softmax: its output does not read e
      v[p] = act.output(shifted, e[p], normalizer);
    }
    L::store(y + j, count, v);
  }
}

// Columns [c, c + count) of one [n, inner] slice, count <= L::kStep; each lane is a row.
template <class L, class Act, class scalar_t>
void forward_columns(Act, const scalar_t* x, scalar_t* y, int64_t n,
                     int64_t inner, int64_t count) {
  static constexpr const RowActivation& act = Act::value;  // static: lambdas use it uncaptured
  using V = typename L::V;
  using opmath = typename L::opmath;
  constexpr int P = L::kParts;
  V row_max[P], sum[P], normalizer[P];
  for (int p = 0; p < P; ++p) row_max[p] = L::splat(-std::numeric_limits<opmath>::infinity());
  for (int64_t j = 0; j < n; ++j) {
    V v[P];
    L::load(x + j * inner, count, v);
    for (int p = 0; p < P; ++p) row_max[p] = L::max(row_max[p], act.signed_input(v[p]));
  }
  pairwise_sum<L>(0, n, [&](int64_t j, V* partial) {
    V v[P];
    L::load(x + j * inner, count, v);
    for (int p = 0; p < P; ++p)
      partial[p] = partial[p] + Math<V>::exp_nonpositive(act.signed_input(v[p]) - row_max[p]);
  }, sum);
  for (int p = 0; p < P; ++p) normalizer[p] = act.normalizer(sum[p]);
  for (int64_t j = 0; j < n; ++j) {
    V v[P];
    L::load(x + j * inner, count, v);
    for (int p = 0; p < P; ++p) {
      const V shifted = act.signed_input(v[p]) - row_max[p];
      v[p] = act.output(shifted, act.log ? shifted : Math<V>::exp_nonpositive(shifted), normalizer[p]);
    }
    L::store(y + j * inner, count, v);
  }
}

// The sum of act.accumulate_backward over one row: what backward's second pass needs.
template <class L, class Act, class scalar_t>
typename L::opmath backward_row_total(Act, const scalar_t* grad_output, const scalar_t* output,
                                      int64_t n) {
  static constexpr const RowActivation& act = Act::value;  // static: lambdas use it uncaptured
  using V = typename L::V;
  constexpr int P = L::kParts;
  V total[P];  // unloaded lanes hold g = y = 0, whose term is 0
  // Captured by value: V's stores may alias anything (__m512 is may_alias), so captured
  // references were loaded again after every partial sum.
  const int64_t blocks = (n + L::kStep - 1) / L::kStep;
  pairwise_sum<L>(0, blocks, [grad_output, output, n](int64_t block, V* partial) {
    const int64_t j = block * L::kStep, count = std::min(L::kStep, n - j);
    V g[P], y[P];
    L::load(grad_output + j, count, g);
    L::load(output + j, count, y);
    for (int p = 0; p < P; ++p) partial[p] = act.accumulate_backward(partial[p], g[p], y[p]);
  }, total);
  for (int p = 1; p < P; ++p) total[0] = total[0] + total[p];
  return L::reduce_sum(total[0]);
}

// `rows` (<= kRowChunk) rows of n contiguous elements, one after another in memory. All the
// rows' totals come first: their horizontal reductions then overlap instead of each row's
// second pass waiting on its own.
template <class L, class Act, class scalar_t>
void backward_rows(Act constant, const scalar_t* grad_output, const scalar_t* output,
                   scalar_t* grad_input, int64_t n, int64_t rows) {
  static constexpr const RowActivation& act = Act::value;
  using V = typename L::V;
  constexpr int P = L::kParts;
  typename L::opmath totals[kRowChunk];
  for (int64_t r = 0; r < rows; ++r)
    totals[r] = backward_row_total<L>(constant, grad_output + r * n, output + r * n, n);
  for (int64_t r = 0; r < rows; ++r) {
    const V row_total = L::splat(totals[r]);
    const int64_t offset = r * n;
    for (int64_t j = 0; j < n; j += L::kStep) {
      const int64_t count = std::min(L::kStep, n - j);
      V g[P], y[P];
      L::load(grad_output + offset + j, count, g);
      L::load(output + offset + j, count, y);
      for (int p = 0; p < P; ++p) g[p] = act.backward(g[p], y[p], row_total);
      L::store(grad_input + offset + j, count, g);
    }
  }
}

template <class L, class Act, class scalar_t>
void backward_columns(Act, const scalar_t* grad_output,
                      const scalar_t* output, scalar_t* grad_input, int64_t n, int64_t inner,
                      int64_t count) {
  static constexpr const RowActivation& act = Act::value;  // static: lambdas use it uncaptured
  using V = typename L::V;
  constexpr int P = L::kParts;
  V total[P];
  pairwise_sum<L>(0, n, [&](int64_t j, V* partial) {
    V g[P], y[P];
    L::load(grad_output + j * inner, count, g);
    L::load(output + j * inner, count, y);
    for (int p = 0; p < P; ++p) partial[p] = act.accumulate_backward(partial[p], g[p], y[p]);
  }, total);
  for (int64_t j = 0; j < n; ++j) {
    V g[P], y[P];
    L::load(grad_output + j * inner, count, g);
    L::load(output + j * inner, count, y);
    for (int p = 0; p < P; ++p) g[p] = act.backward(g[p], y[p], total[p]);
    L::store(grad_input + j * inner, count, g);
  }
}

// The activation as a compile-time constant: the kernels' branches on its flags (softmax
// or log_softmax, softmin's negation) then fold away instead of being tested in every loop.
template <bool kLog, bool kNegate>
struct ConstantActivation {
  static constexpr RowActivation value{kLog, kNegate};
};

// fn(ConstantActivation<act.log, act.negate>{}).
template <class Fn>
void with_constant_activation(RowActivation act, const Fn& fn) {
  if (act.log) {
    act.negate ? fn(ConstantActivation<true, true>{}) : fn(ConstantActivation<true, false>{});
  } else {
    act.negate ? fn(ConstantActivation<false, true>{}) : fn(ConstantActivation<false, false>{});
  }
}

// Calls row(offset, count) for every chunk of rows (inner == 1: offset o*n, count rows of n
// contiguous elements, up to kRowChunk; their pages of `output` prefaulted first when it spans
// at least kPrefaultBytes) or column block (offset o*n*inner + c, count <= kStep columns) of
// [outer, n, inner], in parallel.
template <class L, class scalar_t, class Row>
void for_each_row(int64_t outer, int64_t n, int64_t inner, scalar_t* output, const Row& row) {
  if (inner == 1) {
    const int64_t row_length = std::max<int64_t>(n, 1);
    const int64_t grain = std::max<int64_t>(1, kGrainElements / row_length);
    const int64_t chunk = std::clamp<int64_t>(kRowChunkElements / row_length, 1, kRowChunk);
    const int64_t prefault_rows =
        std::max<int64_t>(1, kPrefaultBytes / (row_length * int64_t(sizeof(scalar_t))));
    const bool prefault = outer * n * int64_t(sizeof(scalar_t)) >= kPrefaultBytes;
    at::parallel_for(0, outer, grain, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; block += prefault_rows) {
        const int64_t block_end = std::min(end, block + prefault_rows);
        if (prefault)
          prefault_pages(output + block * n, (block_end - block) * n * int64_t(sizeof(scalar_t)));
        for (int64_t o = block; o < block_end; o += chunk)
          row(o * n, std::min(chunk, block_end - o));
      }
    });
    return;
  }
  const int64_t blocks = (inner + L::kStep - 1) / L::kStep;
  const int64_t grain =
      std::max<int64_t>(1, kGrainElements / std::max<int64_t>(n * L::kStep, 1));
  at::parallel_for(0, outer * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t o = i / blocks, c = (i % blocks) * L::kStep;
      row(o * n * inner + c, std::min(L::kStep, inner - c));
    }
  });
}

template <class L, class scalar_t>
void forward(RowActivation act, const scalar_t* input, scalar_t* output, int64_t outer,
             int64_t n, int64_t inner) {
  with_constant_activation(act, [&](auto constant) {
    for_each_row<L>(outer, n, inner, output, [&](int64_t offset, int64_t count) {
      if (inner == 1) {
        for (int64_t r = 0; r < count; ++r)
          forward_row<L>(constant, input + offset + r * n, output + offset + r * n, n);
      } else {
        forward_columns<L>(constant, input + offset, output + offset, n, inner, count);
      }
    });
  });
}

template <class L, class scalar_t>
void backward(RowActivation act, const scalar_t* grad_output, const scalar_t* output,
              scalar_t* grad_input, int64_t outer, int64_t n, int64_t inner) {
  with_constant_activation(act, [&](auto constant) {
    for_each_row<L>(outer, n, inner, grad_input, [&](int64_t offset, int64_t count) {
      if (inner == 1) {
        backward_rows<L>(constant, grad_output + offset, output + offset, grad_input + offset, n,
                         count);
      } else {
        backward_columns<L>(constant, grad_output + offset, output + offset, grad_input + offset,
                            n, inner, count);
      }
    });
  });
}

}  // namespace rowwise
}  // namespace cpu
}  // namespace fusedact
