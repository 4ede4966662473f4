PYTHON ?= python3
# torch is pinned to the CPU wheel and installed first, so pip never resolves a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install train smoke test lint format bench clean

install:
	$(PYTHON) -m pip install -q "$(TORCH_SPEC)"
	$(PYTHON) -m pip install -q -e ".[dev]"

train: install
	$(PYTHON) -m layoutnet $(ARGS)

smoke: install
	$(PYTHON) -m layoutnet +experiment=smoke $(ARGS)

test: install
	$(PYTHON) -m pytest $(ARGS)

lint:
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks

format:
	$(PYTHON) -m ruff check --fix src tests benchmarks
	$(PYTHON) -m ruff format src tests benchmarks

bench: install
	$(PYTHON) benchmarks/bench_data.py --json benchmarks/results/data.json
	$(PYTHON) benchmarks/bench_train_step.py
	$(PYTHON) benchmarks/bench_export.py
	$(PYTHON) benchmarks/bench_lexicon.py

clean:
	rm -rf outputs multirun .pytest_cache
