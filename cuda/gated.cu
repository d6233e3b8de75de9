// CUDA kernels of the gated shape class: forward, backward and double backward of every
// row of FUSEDACT_GATED_OPS (packed and split forms share them).
#include <string_view>

#include <fusedact/op_table.h>

#include "elementwise.cuh"

#define FUSEDACT_GATED_LAUNCHERS(name, Functor, ...)                       \
  FUSEDACT_LAUNCHER(fusedact::GatedForward<fusedact::Functor>)  \
  FUSEDACT_LAUNCHER(fusedact::GatedBackward<fusedact::Functor>)  \
  FUSEDACT_LAUNCHER(fusedact::GatedDoubleBackward<fusedact::Functor>)

// Never read: its initializers instantiate every launcher the op layer calls.
__attribute__((used)) static const void* const kGatedLaunchers[] = {
    FUSEDACT_GATED_OPS(FUSEDACT_GATED_LAUNCHERS)};
