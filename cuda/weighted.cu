// CUDA kernels of the weighted shape class: forward and backward of every row of
// FUSEDACT_WEIGHTED_OPS (the weight arrives expanded to the input's layout, or as one row
// that every row reads with row stride 0).
#include <string_view>

#include <fusedact/op_table.h>

#include "elementwise.cuh"

#define FUSEDACT_WEIGHTED_LAUNCHERS(name, Functor)                    \
  FUSEDACT_LAUNCHER(fusedact::WeightedForward<fusedact::Functor>)  \
  FUSEDACT_LAUNCHER(fusedact::WeightedBackward<fusedact::Functor>) \
  FUSEDACT_LAUNCHER(fusedact::WeightedInputBackward<fusedact::Functor>)

// Never read: its initializers instantiate every launcher the op layer calls.
__attribute__((used)) static const void* const kWeightedLaunchers[] = {
    FUSEDACT_WEIGHTED_OPS(FUSEDACT_WEIGHTED_LAUNCHERS)};
