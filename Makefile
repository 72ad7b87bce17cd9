# make demo | make test | make build | make bench | make gpu-check | make clean
# Each target sets up .venv on first use and rebuilds only what changed.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
BUILD := build
CPU_LIB := rmsprop_op/_rmsprop_ops.so
GPU_LIB := rmsprop_op/_rmsprop_gpu_kernels.so
NVCC ?= $(shell command -v nvcc 2>/dev/null)
CXX ?= g++

CPU_SRCS := rmsprop_op/cc/ops/rmsprop_ops.cc rmsprop_op/cc/kernels/rmsprop_cpu_kernels.cc
CPU_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(CPU_SRCS))
GPU_CC_SRCS := rmsprop_op/cc/kernels/rmsprop_gpu_kernels.cc
GPU_CU_SRCS := rmsprop_op/cc/kernels/rmsprop_gpu_functors.cu.cc
GPU_OBJS := $(patsubst %.cc,$(BUILD)/%.o,$(GPU_CC_SRCS)) $(patsubst %.cu.cc,$(BUILD)/%.cu.o,$(GPU_CU_SRCS))

.PHONY: all demo test build bench gpu-check cuda-compile-check clean venv
all: build

venv: $(INSTALLED)
$(INSTALLED): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

# TensorFlow's flags, asked once per install (importing TensorFlow is slow).
$(BUILD)/flags.mk: $(INSTALLED) tools/tf_build_flags.py
	mkdir -p $(BUILD)
	{ echo "TF_CXXFLAGS := $$($(PY) tools/tf_build_flags.py cxxflags 2>/dev/null)"; \
	  echo "TF_NVCCFLAGS := $$($(PY) tools/tf_build_flags.py nvccflags 2>/dev/null)"; \
	  echo "TF_LDFLAGS := $$($(PY) tools/tf_build_flags.py ldflags 2>/dev/null)"; } > $@.tmp
	mv $@.tmp $@
-include $(BUILD)/flags.mk

build: $(CPU_LIB)

$(BUILD)/%.o: %.cc $(BUILD)/flags.mk
	mkdir -p $(dir $@)
	$(CXX) $(TF_CXXFLAGS) -MMD -MP -c $< -o $@

$(CPU_LIB): $(CPU_OBJS)
	$(CXX) -shared $^ -o $@ $(TF_LDFLAGS)

# The GPU kernels: a separate library, loaded only where TensorFlow sees a GPU.
$(BUILD)/%.cu.o: %.cu.cc $(BUILD)/flags.mk
	mkdir -p $(dir $@)
	$(NVCC) $(TF_NVCCFLAGS) -MD -MF $(@:.o=.d) -c $< -o $@

$(GPU_LIB): $(GPU_OBJS)
	$(CXX) -shared $^ -o $@ $(TF_LDFLAGS) -L$(dir $(NVCC))../lib64 -lcudart_static -ldl -lrt -lpthread

cuda-compile-check: $(BUILD)/flags.mk
ifneq ($(NVCC),)
	$(MAKE) $(GPU_OBJS)
else
	@echo "nvcc not found: skipping the CUDA compile check"
endif

test: build cuda-compile-check
	$(PY) -m pytest -q tests

demo: build
	$(PY) -m keras_optimizer

bench: build
	$(PY) -m benchmarks.run

clean:
	rm -rf $(BUILD) $(CPU_LIB) $(GPU_LIB) *.egg-info .pytest_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

-include $(CPU_OBJS:.o=.d) $(GPU_OBJS:.o=.d)
