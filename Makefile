# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# GPU machine: `TORCH=` skips the pinned wheel (pip then takes PyPI's default
# build); add `VENV_FLAGS=--system-site-packages` to use the torch already installed.
TORCH   ?= requirements/torch.txt
VENV_FLAGS ?=
STAMP   := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench bench-quick bench-gpu clean

$(STAMP): pyproject.toml $(TORCH)
	test -x $(BIN)/python || $(PY) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH),$(BIN)/python -m pip install -q -r $(TORCH))
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/wdsweep run examples/demo.toml --study demo-study
	@echo "Open demo-study/report/report.html"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25 tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .

# CPU benchmarks (~50 min on 2 cores; bench-quick: ~8 min). On a GPU box: bench-gpu.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_trainer.py
	$(BIN)/python benchmarks/bench_concurrent.py
	$(BIN)/python benchmarks/bench_sweep_vs_tune.py --repeats 3 --variant p12x1 \
		--variant p12x1-bf16 --out bench-sweep-vs-tune.json

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/bench_trainer.py --quick
	$(BIN)/python benchmarks/bench_sweep_vs_tune.py --quick

bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_smoke.py
	$(BIN)/python benchmarks/bench_gpu.py --out bench-gpu.json

clean:
	rm -rf $(VENV) demo-study .pytest_cache
