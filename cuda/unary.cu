// CUDA kernels of the unary shape class: forward, backward and double backward of every
// row of FUSEDACT_UNARY_OPS, and those of the in-place ops' backward (in-place runs the
// forward kernel with output == input).
#include <string_view>

#include <fusedact/op_table.h>

#include "elementwise.cuh"

#define FUSEDACT_UNARY_LAUNCHERS(name, Functor, ...)                       \
  FUSEDACT_LAUNCHER(fusedact::UnaryForward<fusedact::Functor>)  \
  FUSEDACT_LAUNCHER(fusedact::UnaryBackward<fusedact::UnaryDerivatives<fusedact::Functor>>)  \
  FUSEDACT_LAUNCHER(fusedact::UnaryDoubleBackward<fusedact::UnaryDerivatives<fusedact::Functor>>) \
  FUSEDACT_LAUNCHER(fusedact::UnaryBackward<fusedact::InplaceDerivatives<fusedact::Functor>>)  \
  FUSEDACT_LAUNCHER(fusedact::UnaryDoubleBackward<fusedact::InplaceDerivatives<fusedact::Functor>>)

// Never read: its initializers instantiate every launcher the op layer calls.
__attribute__((used)) static const void* const kUnaryLaunchers[] = {
    FUSEDACT_UNARY_OPS(FUSEDACT_UNARY_LAUNCHERS)};
