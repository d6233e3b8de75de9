# fusedact: every target does its own set-up, idempotently.
#   make test    virtualenv + pinned requirements, build (extension + C++ library/tests), ctest, pytest,
#                and the installed C++ package with examples/cpp
#   make bench   same set-up, then the benchmark (table on stdout; JSON, markdown and a plot
#                under benchmarks/results)
#   make gpu-check PYTHON=python3 OUT=<dir>
#                on a GPU host: build for the local GPU, CUDA tests, compute-sanitizer, the CUDA
#                benchmark; logs, results and summary.txt in <dir> (see "GPU check" below)
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

.PHONY: all setup build ext cpp example-cpp test test-cpp test-python test-asan bench clean \
  gpu-check gpu-build gpu-test gpu-sanitize gpu-bench gpu-summary

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

# AddressSanitizer + UndefinedBehaviorSanitizer, CPU only (CUDA off): the C++ library and
# GoogleTests, then the extension (built beside a copy of the package in
# $(ASAN_DIR)/python, so the regular build stays as it is) under a pytest subset, with the
# sanitizer runtimes preloaded into Python. Any report fails the run (halt_on_error); leak
# detection is off (CPython and torch keep allocations alive at exit by design).
ASAN_DIR := $(BUILD_DIR)-asan
SANITIZE_FLAGS := -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all -fno-omit-frame-pointer
# -O1, as the sanitizers' documentation suggests: quick to build, fast enough to run.
ASAN_OPT ?= -O1
SANITIZER_ENV := ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ASAN_PYTEST ?= tests/python/test_forward_backward.py tests/python/test_special_values.py \
  tests/python/test_bad_inputs.py tests/python/test_gradcheck.py tests/python/test_prelu.py \
  tests/python/test_rrelu.py tests/python/test_functional_nn.py tests/python/test_softmax.py
test-asan: $(SETUP)
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Release -DFUSEDACT_WITH_CUDA=OFF -DFUSEDACT_INSTALL=OFF \
	  -DCMAKE_CXX_FLAGS_RELEASE="$(ASAN_OPT) -DNDEBUG" -DFUSEDACT_CXX_OPT_FLAGS="$(ASAN_OPT)" \
	  -DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(SANITIZE_FLAGS)" \
	  -DCMAKE_SHARED_LINKER_FLAGS="$(SANITIZE_FLAGS)" \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DPython_EXECUTABLE="$(PY)" > $(ASAN_DIR).configure.log || (cat $(ASAN_DIR).configure.log; exit 1)
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)
	rm -rf $(ASAN_DIR)/python && mkdir -p $(ASAN_DIR)/python
	cp -r python/fusedact $(ASAN_DIR)/python/ && rm -f $(ASAN_DIR)/python/fusedact/_C*.so
	FUSEDACT_WITH_CUDA=0 FUSEDACT_SANITIZE_FLAGS="$(SANITIZE_FLAGS) $(ASAN_OPT)" MAX_JOBS=$(JOBS) $(PY) setup.py --quiet \
	  build_ext --build-temp $(ASAN_DIR)/setuptools --build-lib $(ASAN_DIR)/python
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" $(SANITIZER_ENV) \
	  PYTHONPATH=$(ASAN_DIR)/python $(PY) -m pytest $(ASAN_PYTEST) -q -p no:cacheprovider -k "not cuda and not compile"

# BENCH_ARGS adds options, e.g. BENCH_ARGS="--no-compile --dtypes float32" (see bench.py --help).
BENCH_ARGS ?=
bench: ext
	PYTHONPATH=python $(PY) benchmarks/bench.py --out benchmarks/results $(BENCH_ARGS)
	PYTHONPATH=python $(PY) benchmarks/bench_models.py --out-dir benchmarks/results
	PYTHONPATH=python $(PY) benchmarks/bench_diagnostics.py --out-dir benchmarks/results

# ---------------------------------------------------------------------------------------------
# GPU check, for a GPU host (offline, torch preinstalled):
#   make gpu-check PYTHON=python3 OUT=<dir>
# Steps, each logged to <dir>: gpu-build (the extension for the local GPU's architecture only),
# gpu-test (pytest -k cuda, with a junit xml), gpu-sanitize (compute-sanitizer memcheck,
# racecheck and initcheck over SANITIZER_TESTS with torch's caching allocator off), gpu-bench
# (benchmarks/bench.py --device cuda, results into <dir>). A failing step does not stop the
# next ones; gpu-summary writes <dir>/summary.txt and fails if any step failed. The steps are
# targets of their own too (e.g. `make gpu-build gpu-test gpu-summary ...` when time is short).
OUT ?= gpu-check-out
GPU_OUT = $(abspath $(OUT))
GPU_BENCH_ARGS ?=
SANITIZER ?= $(or $(shell command -v compute-sanitizer 2>/dev/null),/usr/local/cuda/bin/compute-sanitizer)
SANITIZER_FLAGS ?=
SANITIZER_TESTS ?= tests/python/test_forward_backward.py tests/python/test_prelu.py \
  tests/python/test_learnable_swish.py tests/python/test_rrelu.py tests/python/test_softmax.py
SANITIZER_K ?= cuda and not f64 and not f16
# The local GPU's compute capability, e.g. 9.0 (empty when torch sees no GPU).
GPU_ARCH = $(shell $(PY) -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())' 2>/dev/null)
# $(GPU_STEP) NAME LOG COMMAND...: runs COMMAND with its output in LOG, appends
# "NAME: ok|FAILED (exit N), seconds, LOG" to $(GPU_OUT)/steps.txt, and never fails itself.
export FUSEDACT_GPU_STEP = name=$$1 log=$$2; shift 2; mkdir -p "$$(dirname "$$log")"; echo "== gpu-check: $$name (log: $$log)"; \
  start=$$SECONDS; "$$@" > "$$log" 2>&1; rc=$$?; tail -n 5 "$$log"; \
  if [ $$rc -eq 0 ]; then st=ok; else st="FAILED (exit $$rc)"; fi; \
  echo "$$name: $$st, $$((SECONDS - start)) s, $$log" | tee -a "$$(dirname "$$log")/steps.txt"
GPU_STEP = bash -c "$$FUSEDACT_GPU_STEP" gpu-step

gpu-check:
	mkdir -p $(GPU_OUT) && rm -f $(GPU_OUT)/steps.txt
	$(MAKE) --no-print-directory -j1 gpu-build gpu-test gpu-sanitize gpu-bench OUT=$(GPU_OUT)
	$(MAKE) --no-print-directory gpu-summary OUT=$(GPU_OUT)

gpu-build:
	$(GPU_STEP) build $(GPU_OUT)/build.log env TORCH_CUDA_ARCH_LIST="$(GPU_ARCH)" MAX_JOBS=$(JOBS) \
	  $(PY) setup.py build_ext --inplace --build-temp $(BUILD_DIR)/setuptools
	$(GPU_STEP) cuda-smoke $(GPU_OUT)/cuda-smoke.log env PYTHONPATH=python $(PY) -c "import torch, fusedact; \
	  y = torch.ops.fusedact.swiglu(torch.randn(4, 8, device='cuda')); torch.cuda.synchronize(); \
	  print('fusedact runs on', torch.cuda.get_device_name(), 'capability', torch.cuda.get_device_capability())"

gpu-test:
	$(GPU_STEP) pytest-cuda $(GPU_OUT)/pytest-cuda.log env PYTHONPATH=python \
	  $(PY) -m pytest tests/python -k cuda -q -rfEs -p no:cacheprovider --junitxml=$(GPU_OUT)/pytest-cuda.xml

gpu-sanitize:
	for tool in memcheck racecheck initcheck; do \
	  $(GPU_STEP) sanitizer-$$tool $(GPU_OUT)/sanitizer-$$tool.log env PYTORCH_NO_CUDA_MEMORY_CACHING=1 \
	    PYTHONPATH=python $(SANITIZER) --tool $$tool --error-exitcode 1 --print-limit 50 $(SANITIZER_FLAGS) \
	    $(PY) -m pytest $(SANITIZER_TESTS) -k "$(SANITIZER_K)" -q -p no:cacheprovider; \
	done

gpu-bench:
	$(GPU_STEP) bench $(GPU_OUT)/bench.log env PYTHONPATH=python PYTHONUNBUFFERED=1 \
	  $(PY) benchmarks/bench.py --device cuda --out $(GPU_OUT) $(GPU_BENCH_ARGS)

gpu-summary:
	@{ echo "fusedact gpu-check, $$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $$(git rev-parse --short HEAD 2>/dev/null)"; \
	  $(PY) -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "|", \
	    torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")' 2>&1; \
	  echo; cat $(GPU_OUT)/steps.txt 2>/dev/null || echo "no steps ran"; \
	  for t in memcheck racecheck initcheck; do \
	    f=$(GPU_OUT)/sanitizer-$$t.log; [ -f $$f ] && echo "$$t: $$(grep -h 'ERROR SUMMARY' $$f | tail -n 1)"; done; \
	  [ -f $(GPU_OUT)/pytest-cuda.log ] && echo "pytest: $$(tail -n 1 $(GPU_OUT)/pytest-cuda.log)"; \
	  [ -f $(GPU_OUT)/bench.log ] && { echo; sed -n '/^== issue targets/,/^(/p' $(GPU_OUT)/bench.log; }; \
	  true; } > $(GPU_OUT)/summary.txt
	@cat $(GPU_OUT)/summary.txt
	@if grep -q FAILED $(GPU_OUT)/steps.txt 2>/dev/null; then echo "gpu-check: FAILED"; exit 1; \
	  elif [ ! -s $(GPU_OUT)/steps.txt ]; then echo "gpu-check: no step ran"; exit 1; \
	  else echo "gpu-check: all steps ok"; fi

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log $(ASAN_DIR) $(ASAN_DIR).configure.log python/fusedact/_C*.so
