// The Python extension module `fusedact._C`. Importing it loads the shared library, whose
// static initializers register torch.ops.fusedact.*. It also holds one function per unary
// and gated op, `_C.<op>_default(tensor)`: the op with all its default parameters, called
// through the C++ API (so through the dispatcher: autograd, torch.func, fake tensors and
// dispatch modes all apply) without torch.ops' generic argument parsing, which costs about
// a microsecond per call. fusedact.functional takes it for calls with default parameters.
#include <Python.h>

#include <ATen/PythonTorchFunctionTLS.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>
#include <torch/csrc/utils/pybind.h>

#include <optional>
#include <type_traits>
#include <vector>

#include <fusedact/fusedact.h>

#include "cpu/vectorized.h"

namespace {

// NotImplemented (the caller falls back to torch.ops) for anything but a plain tensor with
// no torch-function mode active: subclasses and modes need torch.ops' __torch_function__.
template <class Call>
PyObject* call_with_defaults(PyObject* arg, const Call& call) {
  HANDLE_TH_ERRORS
  if (!THPVariable_CheckExact(arg) || at::impl::torch_function_mode_enabled()) {
    Py_RETURN_NOTIMPLEMENTED;
  }
  const at::Tensor& input = THPVariable_Unpack(arg);
  at::Tensor result;
  {
    pybind11::gil_scoped_release no_gil;  // as torch's own bindings
    result = call(input);
  }
  return THPVariable_Wrap(std::move(result));
  END_HANDLE_TH_ERRORS
}

// `_C.<op>_default`, for the ops whose parameters all have defaults (threshold's do not):
// `call(x)` only compiles for those.
template <class Call>
struct DefaultCall {
  static inline std::optional<Call> call;
  static PyObject* invoke(PyObject*, PyObject* arg) { return call_with_defaults(arg, *call); }
};

template <class Call>
void add_default_call(std::vector<PyMethodDef>& methods, const char* name, const Call& call) {
  if constexpr (std::is_invocable_v<Call, const at::Tensor&>) {
    DefaultCall<Call>::call.emplace(call);
    methods.push_back({name, &DefaultCall<Call>::invoke, METH_O, nullptr});
  }
}

#define FUSEDACT_DEFAULT_CALL(name, ...)                                     \
  add_default_call(methods, #name "_default",                                \
                   [](const auto& x) -> decltype(fusedact::name(x)) {        \
                     return fusedact::name(x);                               \
                   });

// `_C.cpu_kernels()`: which CPU kernels the ops run, "avx512", "avx2" or "default" (scalar).
PyObject* cpu_kernels(PyObject*, PyObject*) {
  switch (fusedact::cpu::simd_level()) {
    case fusedact::cpu::SimdLevel::kAvx512:
      return PyUnicode_FromString("avx512");
    case fusedact::cpu::SimdLevel::kAvx2:
      return PyUnicode_FromString("avx2");
    case fusedact::cpu::SimdLevel::kNone:
      break;
  }
  return PyUnicode_FromString("default");
}

PyMethodDef* method_table() {
  static std::vector<PyMethodDef> methods = [] {
    std::vector<PyMethodDef> methods;
    methods.push_back({"cpu_kernels", &cpu_kernels, METH_NOARGS, nullptr});
    FUSEDACT_UNARY_OPS(FUSEDACT_DEFAULT_CALL)
    FUSEDACT_GATED_OPS(FUSEDACT_DEFAULT_CALL)
    methods.push_back({nullptr, nullptr, 0, nullptr});
    return methods;
  }();
  return methods.data();
}

#undef FUSEDACT_DEFAULT_CALL

}  // namespace

extern "C" PyObject* PyInit__C(void) {
  fusedact::detail::ensure_registered();  // the ops' kernel for None and unsupported tensors
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, method_table()};
  return PyModule_Create(&module);
}
