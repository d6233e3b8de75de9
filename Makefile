# fusedact: every target does its own set-up, idempotently.
#   make test    virtualenv + pinned requirements, build (extension + C++ library/tests), ctest, pytest,
#                and the installed C++ package with examples/cpp
#   make bench   same set-up, then the benchmark (table on stdout, JSON + markdown under benchmarks/results)
# Offline hosts with torch already installed: `make test PYTHON=python3` uses that interpreter
# and installs nothing.

PYTHON ?=
VENV := .venv
ifeq ($(strip $(PYTHON)),)
  PY := $(abspath $(VENV))/bin/python
  SETUP := $(VENV)/.installed
  export PATH := $(abspath $(VENV))/bin:$(PATH)
else
  PY := $(PYTHON)
  SETUP :=
endif

# CUDA architectures to compile for (CI sets 9.0 only, to keep the build short).
CUDA_ARCHS ?= 8.0;8.6;8.9;9.0
JOBS ?= $(shell nproc)
BUILD_DIR ?= build
PYTEST_ARGS ?=

.PHONY: all setup build ext cpp example-cpp test test-cpp test-python bench clean

all: build

setup: $(SETUP)

$(VENV)/.installed: requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

build: ext cpp

# The Python extension, built in place into python/fusedact/.
ext: $(SETUP)
	TORCH_CUDA_ARCH_LIST="$(CUDA_ARCHS)" MAX_JOBS=$(JOBS) $(PY) setup.py --quiet build_ext --inplace --build-temp $(BUILD_DIR)/setuptools

# The C++ library and GoogleTests with CMake against the same torch.
cpp: $(SETUP)
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DPython_EXECUTABLE="$(PY)" -DFUSEDACT_CUDA_ARCHS="$(CUDA_ARCHS)" > $(BUILD_DIR).configure.log \
	  || (cat $(BUILD_DIR).configure.log; exit 1)
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Installs the C++ package into $(BUILD_DIR)/install, checks the installed tree, then builds
# examples/cpp against it as a separate CMake project (linked with --as-needed, which must
# keep libfusedact.so: the example calls its API) and runs it (trains a small MLP).
INSTALL_DIR := $(abspath $(BUILD_DIR))/install
example-cpp: cpp
	rm -rf $(INSTALL_DIR)
	cmake --install $(BUILD_DIR) --prefix $(INSTALL_DIR) > $(BUILD_DIR)/install.log \
	  || (cat $(BUILD_DIR)/install.log; exit 1)
	@for f in include/fusedact/fusedact.h lib/libfusedact.so lib/cmake/fusedact/fusedactConfig.cmake \
	    lib/cmake/fusedact/fusedactConfigVersion.cmake lib/cmake/fusedact/fusedactTargets.cmake; do \
	  test -f $(INSTALL_DIR)/$$f || { echo "install check: missing $(INSTALL_DIR)/$$f"; exit 1; }; \
	done; echo "install check: ok ($(INSTALL_DIR))"
	cmake -S examples/cpp -B $(BUILD_DIR)/example-cpp -DCMAKE_BUILD_TYPE=Release \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)');$(INSTALL_DIR)" \
	  -DCMAKE_EXE_LINKER_FLAGS="-Wl,--as-needed" > $(BUILD_DIR)/example-cpp.configure.log \
	  || (cat $(BUILD_DIR)/example-cpp.configure.log; exit 1)
	cmake --build $(BUILD_DIR)/example-cpp -j $(JOBS)
	@readelf -d $(BUILD_DIR)/example-cpp/train_mlp | grep -q 'NEEDED.*\[libfusedact\.so\]' \
	  || { echo "example-cpp: train_mlp does not load libfusedact.so"; exit 1; }
	$(BUILD_DIR)/example-cpp/train_mlp

test: build test-cpp example-cpp test-python

test-cpp:
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

test-python:
	PYTHONPATH=python $(PY) -m pytest tests/python -q $(PYTEST_ARGS)

bench: ext
	PYTHONPATH=python $(PY) benchmarks/bench.py --out benchmarks/results

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log python/fusedact/_C*.so
