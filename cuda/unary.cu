// CUDA kernels of the unary shape class: forward, backward and double backward of every
// row of FUSEDACT_UNARY_OPS (in-place runs the forward kernel with output == input).
#include <string_view>

#include <fusedact/op_table.h>

#include "elementwise.cuh"

#define FUSEDACT_INSTANTIATE_UNARY(name, Functor, ...)                \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::UnaryForward<fusedact::Functor>)  \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::UnaryBackward<fusedact::Functor>) \
  FUSEDACT_INSTANTIATE_LAUNCH(fusedact::UnaryDoubleBackward<fusedact::Functor>)

FUSEDACT_UNARY_OPS(FUSEDACT_INSTANTIATE_UNARY)
