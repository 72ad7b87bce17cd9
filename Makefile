# Targets (each sets up .venv on first use and rebuilds only what changed):
#   make demo                the demo (python -m keras_optimizer)
#   make test                build, CUDA compile check, every test (what CI runs)
#   make test-fast           the inner loop: the tests not marked slow or subprocess
#                            (markers in pyproject.toml; a few minutes on 2 cores)
#   make build               the CPU op library, rmsprop_op/_rmsprop_ops.so
#   make cuda-compile-check  compile and link the GPU library and the checker
#                            (with the CUDA 12 toolkit of tools/cuda_toolkit.py)
#   make gpu-check           run the standalone GPU checker (skips without a GPU)
#   make gpu-report          the checker, the GPU tests and the XLA tests on the GPU, output
#                            kept in out/gpu_report.txt
#   make bench               the benchmark (benchmarks/)
#   make fuzz                the property-based tests with the long profile
#   make sanitize            op tests against an ASan/UBSan build of the library
#   make compat              the TensorFlow x Keras support window (compat/)
#   make wheel | wheel-test  the wheel for .venv's TensorFlow in dist/, and its tests outside the tree
#   make wheels              one wheel per TensorFlow minor of the window, each tested
#   make bazel-build | bazel-test | bazel-clean   the Bazel build of the CPU library
#   make clean               every build output

PYTHON ?= python3
# Independent compiles run side by side (one job per core) unless -j is given.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif
VENV := .venv
PY := $(VENV)/bin/python
# requirements.txt (the package and the demo), then requirements-dev.txt
# (tests, benchmark, wheels) for the targets that need them.
INSTALLED := $(VENV)/.installed
DEV_INSTALLED := $(VENV)/.installed-dev
# Objects and other build outputs; not build/, which would clash with the
# Bazel BUILD file on case-insensitive file systems.
BUILD := out
CPU_LIB := rmsprop_op/_rmsprop_ops.so
GPU_LIB := rmsprop_op/_rmsprop_gpu_kernels.so
CXX ?= g++

# The sources, from sources.bzl (shared with setup.py and Bazel).
SOURCES = $(shell $(PYTHON) tools/tf_build_flags.py $(1))
CPU_SRCS := $(call SOURCES,cpu-sources)
CPU_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(CPU_SRCS))
GPU_CC_SRCS := $(call SOURCES,gpu-registration-sources)
GPU_CU_SRCS := $(call SOURCES,gpu-cuda-sources)
GPU_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(GPU_CC_SRCS)) $(patsubst %.cu.cc,$(BUILD)/%.cu.o,$(GPU_CU_SRCS))
GPU_CHECK := $(BUILD)/gpu_check/gpu_check

.PHONY: all demo test test-fast build bench gpu-check gpu-report cuda-compile-check clean venv compat wheel \
	wheel-test wheels fuzz sanitize bazel-build bazel-test bazel-clean
all: build

venv: $(DEV_INSTALLED)
$(INSTALLED): requirements.txt constraints.txt
	@echo "Installing TensorFlow, Keras and scikit-learn into $(VENV) (about 2.3 GB; minutes on a first run)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

$(DEV_INSTALLED): $(INSTALLED) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

# TensorFlow's flags, asked once per install (importing TensorFlow is slow).
$(BUILD)/flags.mk: $(INSTALLED) tools/tf_build_flags.py
	mkdir -p $(BUILD)
	{ echo "TF_CXXFLAGS := $$($(PY) tools/tf_build_flags.py cxxflags 2>/dev/null)"; \
	  echo "TF_LDFLAGS := $$($(PY) tools/tf_build_flags.py ldflags 2>/dev/null)"; } > $@.tmp
	mv $@.tmp $@
-include $(BUILD)/flags.mk

build: $(CPU_LIB)

$(BUILD)/%.o: %.cc $(BUILD)/flags.mk
	mkdir -p $(dir $@)
	$(CXX) $(TF_CXXFLAGS) -MMD -MP -c $< -o $@

$(CPU_LIB): $(CPU_OBJS)
	mkdir -p $(dir $@)
	$(CXX) -shared $^ -o $@ $(TF_LDFLAGS)

# The GPU kernels: a separate library, loaded only where TensorFlow sees a GPU,
# built with the CUDA 12 toolkit that tools/cuda_toolkit.py assembles in .cuda/
# (or the one $NVCC names) for the architectures TensorFlow's GPU build lists.
# The CUDA half (.cu.cc) is compiled by nvcc without TensorFlow's headers; the
# registrations (.cc) by $(CXX) against TensorFlow and its CUDA headers. The
# flags, and why, are in tools/tf_build_flags.py. The GPU rules and their
# flags (gpu_flags.mk) are read only in the sub-make of cuda-compile-check, so
# that CPU-only targets never assemble the toolkit.
CUDA_TOOLKIT := .cuda/version.txt
TF_INCLUDE = $(patsubst -I%,%,$(filter -I%/tensorflow/include,$(TF_CXXFLAGS)))

$(CUDA_TOOLKIT): tools/cuda_toolkit.py
	$(PYTHON) tools/cuda_toolkit.py

ifdef WITH_GPU
$(BUILD)/gpu_flags.mk: $(INSTALLED) tools/tf_build_flags.py $(CUDA_TOOLKIT)
	mkdir -p $(BUILD)
	{ echo "NVCC := $$($(PY) tools/tf_build_flags.py nvcc)"; \
	  echo "TF_NVCCFLAGS := $$($(PY) tools/tf_build_flags.py nvccflags 2>/dev/null)"; \
	  echo "GPU_CXXFLAGS := $$($(PY) tools/tf_build_flags.py gpu-cxxflags 2>/dev/null)"; \
	  echo "GPU_LDFLAGS := $$($(PY) tools/tf_build_flags.py gpu-ldflags 2>/dev/null)"; \
	  echo "CUDA_CHECK_FLAGS := $$($(PY) tools/tf_build_flags.py cuda-check-flags 2>/dev/null)"; \
	} > $@.tmp
	mv $@.tmp $@
include $(BUILD)/gpu_flags.mk
endif

$(BUILD)/%.cu.o: %.cu.cc $(BUILD)/gpu_flags.mk
	mkdir -p $(dir $@)
	$(NVCC) $(TF_NVCCFLAGS) -MD -MP -MF $(@:.o=.d) -c $< -o $@

$(patsubst %.cc,$(BUILD)/%.o,$(GPU_CC_SRCS)): $(BUILD)/%.o: %.cc $(BUILD)/gpu_flags.mk
	mkdir -p $(dir $@)
	$(CXX) $(GPU_CXXFLAGS) -MMD -MP -c $< -o $@

$(GPU_LIB): $(GPU_OBJS)
	$(CXX) -shared $^ -o $@ $(GPU_LDFLAGS)

# The standalone checker: the kernels and the CPU reference, no TensorFlow;
# linked by the host compiler against the toolkit's CUDA runtime.
$(GPU_CHECK).o: gpu_check/gpu_check.cu $(BUILD)/gpu_flags.mk
	mkdir -p $(dir $@)
	$(NVCC) $(CUDA_CHECK_FLAGS) -I. -MD -MP -MT $@ -MF $(GPU_CHECK).d -c $< -o $@

$(GPU_CHECK): $(GPU_CHECK).o
	$(CXX) $< -o $@ -L$(dir $(NVCC))../lib64 -l:libcudart.so.12 \
	  -Wl,-rpath,$(abspath $(dir $(NVCC))../lib64) -ldl -lrt -lpthread

# Compiles and links everything CUDA (without running it), so that a broken
# kernel never lands.
cuda-compile-check: $(BUILD)/flags.mk $(CUDA_TOOLKIT)
	@if [ -d "$(TF_INCLUDE)/third_party/gpus/cuda/include" ]; then \
	  $(MAKE) WITH_GPU=1 $(GPU_LIB) $(GPU_CHECK); \
	else \
	  echo "TensorFlow has no CUDA headers (not a CUDA build): compiling only $(GPU_CHECK)"; \
	  $(MAKE) WITH_GPU=1 $(GPU_CHECK); \
	fi

# Runs every kernel variant against the CPU reference on this machine's GPU
# and times them against a device-to-device copy, then again under
# compute-sanitizer (memcheck, racecheck, initcheck) with a few small cases;
# skips without a GPU.
gpu-check: cuda-compile-check
	./$(GPU_CHECK)
	@sanitizer=.cuda/compute-sanitizer/compute-sanitizer; \
	if [ -x $$sanitizer ] && ./$(GPU_CHECK) --has-gpu; then \
	  for tool in memcheck racecheck initcheck; do \
	    $$sanitizer --tool $$tool --error-exitcode 1 ./$(GPU_CHECK) --quick || exit 1; \
	  done; \
	fi

# What a machine with a GPU runs once, in a few minutes: the checker (its
# checks, timing table and compute-sanitizer runs), then the TensorFlow GPU
# tests; everything they print is also kept in $(BUILD)/gpu_report.txt, the
# source of the README's GPU section.
gpu-report: $(DEV_INSTALLED) build cuda-compile-check
	@mkdir -p $(BUILD); \
	$(MAKE) --no-print-directory gpu-check > $(BUILD)/gpu_report.txt 2>&1; checked=$$?; \
	$(PY) -m pytest -q -rs tests/test_gpu.py tests/test_xla.py >> $(BUILD)/gpu_report.txt 2>&1; tested=$$?; \
	cat $(BUILD)/gpu_report.txt; \
	[ $$checked -eq 0 ] && [ $$tested -eq 0 ]

# Every TensorFlow x Keras cell of the support window, each in its own
# environment under .compat/ (compat/run.py); `make compat TF=2.17.1
# KERAS=3.5.0` runs one cell, `make compat CELL=oldest` (or newest, nightly,
# window) one group. Results: compat/results.json and README.md's table;
# COMPAT_FLAGS=--no-save leaves both alone (CI).
compat:
	$(PYTHON) -m compat.run $(if $(TF),--tf $(TF) --keras $(KERAS),--cell $(or $(CELL),all)) $(COMPAT_FLAGS)

# Release wheels (tools/build_wheels.py): built against each TensorFlow
# minor, tagged manylinux by auditwheel for the glibc and libstdc++ they need,
# in dist/; the wheel requires its TensorFlow minor. `make wheel` builds the
# one for .venv's TensorFlow, `make wheel-test` also installs it into a fresh
# environment with only that TensorFlow and tests it from outside the tree;
# `make wheels` builds and tests one per minor of the support window
# (`make wheels MINORS="2.16 2.21"`: those).
wheel: $(DEV_INSTALLED) $(CUDA_TOOLKIT)
	$(PY) tools/build_wheels.py --current

wheel-test: $(DEV_INSTALLED) $(CUDA_TOOLKIT)
	$(PY) tools/build_wheels.py --current --test

wheels: $(DEV_INSTALLED) $(CUDA_TOOLKIT)
	$(PY) tools/build_wheels.py --test $(MINORS)

test: $(DEV_INSTALLED) build cuda-compile-check
	$(PY) -m pytest -q tests

# No CUDA compile check and none of the tests marked slow (the differential
# and tf_keras harnesses, training runs) or subprocess (fresh interpreters,
# compilers): `make test` before pushing runs those too.
test-fast: $(DEV_INSTALLED) build
	$(PY) -m pytest -q -m "not slow and not subprocess" tests

demo: build
	$(PY) -m keras_optimizer

bench: $(DEV_INSTALLED) build benchmarks/_bandwidth_probe.so
	$(PY) -m benchmarks.run

clean:
	rm -rf $(BUILD) $(CPU_LIB) $(GPU_LIB) dist *.egg-info .pytest_cache .hypothesis \
	  benchmarks/_bandwidth_probe.so
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

-include $(CPU_OBJS:.o=.d) $(GPU_OBJS:.o=.d) $(GPU_CHECK).d

# The memory-bandwidth probe of the benchmark, built for this machine.
benchmarks/_bandwidth_probe.so: benchmarks/bandwidth_probe.c
	$(CC) -O3 -march=native -fPIC -shared -pthread -Wall $< -o $@

# The property-based tests with the long hypothesis profile (thousands of
# examples per test instead of the hundred or so that `make test` runs): the
# op fuzzing, and the differential harness against the stock optimizers
# (Keras 3 with one and two CPU devices, tf_keras in its own process).
fuzz: $(DEV_INSTALLED) build
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q --hypothesis-show-statistics \
	  tests/test_fuzz.py tests/test_fuzz_compact.py tests/test_differential.py tests/test_legacy.py

# The CPU library again, with AddressSanitizer and UndefinedBehaviorSanitizer,
# in $(BUILD)/sanitize/ beside the normal one; the op tests, the quick fuzz and
# the concurrency tests run against it through RMSPROP_OP_LIBRARY. Python is not instrumented, so
# the sanitizer runtimes are preloaded, and leak checking is off: the
# interpreter and TensorFlow keep their allocations until exit by design.
SAN_BUILD := $(BUILD)/sanitize
SAN_LIB := $(SAN_BUILD)/_rmsprop_ops.so
SAN_OBJS := $(patsubst %.cc,$(SAN_BUILD)/%.o,$(CPU_SRCS))
# GCC 12 rejects abseil's constexpr function-pointer comparisons (included
# through TensorFlow's headers) under the null and nonnull checks of
# -fsanitize=undefined; they stay off, and ASan reports a null dereference as
# a SEGV with its stack anyway.
SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize=null,nonnull-attribute,returns-nonnull-attribute -fno-sanitize-recover=all
SAN_TESTS := tests/test_ops.py tests/test_op_errors.py tests/test_fuzz.py tests/test_concurrency.py \
	tests/test_xla.py tests/test_compact_state_ops.py tests/test_fuzz_compact.py
SAN_ENV = LD_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	RMSPROP_OP_LIBRARY=$(abspath $(SAN_LIB))

$(SAN_BUILD)/%.o: %.cc $(BUILD)/flags.mk
	mkdir -p $(dir $@)
	$(CXX) $(TF_CXXFLAGS) $(SAN_FLAGS) -MMD -MP -c $< -o $@

$(SAN_LIB): $(SAN_OBJS)
	$(CXX) -shared $(SAN_FLAGS) $^ -o $@ $(TF_LDFLAGS)

# --capture=sys: with pytest's default capture of file descriptors, a report
# that aborts the process would vanish with the captured output.
sanitize: $(DEV_INSTALLED) $(SAN_LIB)
	$(SAN_ENV) $(PY) -m pytest -q -p no:cacheprovider --capture=sys $(SAN_TESTS)

-include $(SAN_OBJS:.o=.d)

# The same CPU library built by Bazel, for those who vendor the op into a
# Bazel workspace (BAZEL.md); `make build` stays the default and `make
# test` needs no Bazel. Bazel 4 (Debian's bazel-bootstrap) is tested;
# bazel-build says how to install it when missing. It reads TensorFlow, its
# flags and Python from .venv (through tools/tf_build_flags.py) and
# downloads nothing. The library lands in bazel-bin/ only. bazel-test runs the op tests twice: as a
# Bazel py_test, and with pytest against the Bazel-built library.
BAZEL ?= bazel
BAZEL_LIB := bazel-bin/rmsprop_op/_rmsprop_ops.so
BAZEL_OP_TESTS := tests/test_ops.py tests/test_op_errors.py

bazel-build: $(INSTALLED)
	@command -v $(BAZEL) >/dev/null 2>&1 || { \
	  echo "$(BAZEL) not found. Bazel 4.2 is tested: on Debian or Ubuntu," \
	    "\`sudo apt-get install bazel-bootstrap\`; or name another with BAZEL=..."; exit 1; }
	$(BAZEL) build //...

bazel-test: $(DEV_INSTALLED) bazel-build
	$(BAZEL) test //...
	RMSPROP_OP_LIBRARY=$(abspath $(BAZEL_LIB)) $(PY) -m pytest -q -p no:cacheprovider $(BAZEL_OP_TESTS)

bazel-clean:
	if command -v $(BAZEL) >/dev/null 2>&1; then $(BAZEL) clean; fi
