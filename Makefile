# Two commands on a fresh machine: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# GPU machine: `TORCH=` skips the pinned wheel (pip then takes PyPI's default
# build); add `VENV_FLAGS=--system-site-packages` to use the torch already installed.
TORCH   ?= requirements/torch.txt
VENV_FLAGS ?=
STAMP   := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

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
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_trainer.py

clean:
	rm -rf $(VENV) demo-study .pytest_cache
