# dsen2cr developer entry points. `make test` and `make demo` work on a fresh machine.
# TORCH_SPEC pins the CPU build of PyTorch: an unpinned `torch` would pull several GB of CUDA
# wheels. Override it on a GPU machine, e.g. `make test TORCH_SPEC="torch==2.13.0 --index-url ..."`.
PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
DEMO_OUT   ?= demo_out
PYTEST_ARGS ?=

BIN   := $(VENV)/bin
STAMP := $(VENV)/.dsen2cr-installed

.PHONY: install test lint demo bench clean

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
	$(BIN)/dsen2cr benchmark --quick --realdata ../shared/realdata/sen12mscr_triplets
	$(BIN)/python benchmarks/bench_cloudmask.py
	$(BIN)/python benchmarks/bench_dataloading.py
	$(BIN)/python benchmarks/bench_predict.py --device cpu --size 2048 --features 32 --blocks 4

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
