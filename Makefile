# dsen2cr developer entry points. `make test` and `make demo` work on a fresh machine.
# TORCH_SPEC pins the CPU build of PyTorch: an unpinned `torch` would pull several GB of CUDA
# wheels. Override it on a GPU machine, e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url ..."`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT   ?= demo_out
PYTEST_ARGS ?=
# the real sample data (tests that read it skip when it is absent)
DSEN2CR_REALDATA ?= ../shared/realdata
REALDATA   ?= $(DSEN2CR_REALDATA)/sen12mscr_triplets

BIN   := $(VENV)/bin
STAMP := $(VENV)/.dsen2cr-installed

.PHONY: install test lint demo bench gpu-check gpu-check-prepare clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the demo's own folder: --overwrite replaces the previous demo run in it
demo: install
	$(BIN)/dsen2cr demo --out $(DEMO_OUT) --overwrite

# CPU-sized benchmarks (JSON on stdout); see README "Benchmarks" for the GPU-sized ones.
bench: install
	$(BIN)/dsen2cr benchmark --quick --realdata $(REALDATA)
	$(BIN)/python benchmarks/bench_cloudmask.py
	$(BIN)/python benchmarks/bench_dataloading.py
	$(BIN)/python benchmarks/bench_predict.py --device cpu --size 2048 --features 32 --blocks 4

# Every GPU figure in one run on a bare GPU machine without network (about 9 minutes at most):
# CUDA-only tests, the 10980^2 tile with predict's defaults and in bf16 (GPU busy fraction),
# the io and compile sections, bf16 / TF32 error on real patches, benchmark --ladder. Runs with the
# machine's own python3 (GPU_CHECK_PYTHON); installs missing modules from .whl/ only.
# `make gpu-check GPU_CHECK_DEVICE=cpu GPU_CHECK_PYTHON=.venv/bin/python` tests it on a CPU.
GPU_CHECK_OUT    ?= gpu_check_out
GPU_CHECK_DEVICE ?= cuda
GPU_CHECK_PYTHON ?= python3
gpu-check:
	GPU_CHECK_OUT=$(GPU_CHECK_OUT) GPU_CHECK_DEVICE=$(GPU_CHECK_DEVICE) \
	    $(GPU_CHECK_PYTHON) benchmarks/gpu_check.py

# Where PyPI is reachable: the wheels the GPU machine lacks (its Python 3.12, manylinux x86-64)
# into .whl/, and the real S1 / cloudy S2 patches of the bf16 check into .gpu_check_data/
# (both ignored by git; carry them to the GPU machine).
GPU_WHEELS ?= rasterio==1.4.4 affine==3.0.1 cligj==0.7.2 click-plugins==1.1.1.2 nvidia-ml-py==13.615.71
gpu-check-prepare: install
	$(BIN)/python -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
	    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -d .whl $(GPU_WHEELS)
	mkdir -p .gpu_check_data/sen12mscr_triplets
	if [ -d $(REALDATA) ]; then cp $(REALDATA)/*_s2_cloudy.tif $(REALDATA)/*_s1.tif \
	    .gpu_check_data/sen12mscr_triplets/; fi
	du -shc .whl .gpu_check_data

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
