// The Python extension module `fusedact._C`. It holds no Python functions: importing it
// loads the shared library, whose static initializers register torch.ops.fusedact.*.
#include <Python.h>

extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
