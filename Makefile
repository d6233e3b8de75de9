# fusedact: every target does its own set-up, idempotently.
#   make test    virtualenv + pinned requirements, build (extension + C++ library/tests), ctest, pytest
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

.PHONY: all setup build ext cpp test test-cpp test-python bench clean

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

test: build test-cpp test-python

test-cpp:
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

test-python:
	PYTHONPATH=python $(PY) -m pytest tests/python -q $(PYTEST_ARGS)

bench: ext
	PYTHONPATH=python $(PY) benchmarks/bench.py --out benchmarks/results

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log python/fusedact/_C*.so
