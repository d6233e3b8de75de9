// CUDA kernels of the gated shape class: forward, backward and double backward of every
// row of FUSEDACT_GATED_OPS (packed and split forms share them).
#include <string_view>

#include <fusedact/op_table.h>

#include "elementwise.cuh"

#define FUSEDACT_INSTANTIATE_GATED(name, Functor, ...)                \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::GatedForward<fusedact::Functor>)  \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::GatedBackward<fusedact::Functor>) \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::GatedDoubleBackward<fusedact::Functor>)

FUSEDACT_GATED_OPS(FUSEDACT_INSTANTIATE_GATED)
