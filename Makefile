PYTHON ?= python3
# torch is pinned to the CPU wheel and installed first, so pip never resolves a CUDA build.
TORCH_SPEC ?= torch==2.13.0

# `make install` (and every target that needs the package) installs once per Python environment: a stamp
# per interpreter under .make/ is remade when pyproject.toml or this Makefile change, and the install runs
# again whenever `layoutnet` does not import from this checkout (a fresh virtual environment, or another
# clone installed last).
STAMP := .make/installed-$(shell $(PYTHON) -c 'import hashlib, sys; print(hashlib.sha1(sys.prefix.encode()).hexdigest()[:12])' 2>/dev/null)
INSTALLED_FROM := $(shell $(PYTHON) -c 'import importlib.util as u; s = u.find_spec("layoutnet"); print(s.origin if s else "")' 2>/dev/null)

# Every benchmark script, and the second mode two of them have: `make bench` runs them all, each at the
# settings BENCHMARKS.md quotes (long); `make bench-<name>` runs one (bench-data, bench-export, ...);
# BENCH_ARGS_<name> adds arguments to one.
BENCHMARKS := $(patsubst benchmarks/bench_%.py,bench-%,$(sort $(wildcard benchmarks/bench_*.py)))
BENCHMARKS += bench-export-executor bench-threads-arrival
BENCH_ARGS_data ?= --json benchmarks/results/data.json

.PHONY: install reinstall train smoke test lint format bench clean

install: $(STAMP)

ifneq ($(INSTALLED_FROM),$(CURDIR)/src/layoutnet/__init__.py)
.PHONY: $(STAMP)
endif

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m pip install -q "$(TORCH_SPEC)"
	$(PYTHON) -m pip install -q -e ".[dev]"
	@mkdir -p $(@D) && touch $@

reinstall:
	rm -f $(STAMP)
	$(MAKE) install

smoke: install
	$(PYTHON) -m layoutnet +experiment=smoke $(ARGS)

train: install
	$(PYTHON) -m layoutnet $(ARGS)

test: install
	$(PYTHON) -m pytest $(ARGS)

lint:
	$(PYTHON) -m ruff check src tests benchmarks scripts
	$(PYTHON) -m ruff format --check src tests benchmarks scripts

format:
	$(PYTHON) -m ruff check --fix src tests benchmarks scripts
	$(PYTHON) -m ruff format src tests benchmarks scripts

bench: $(BENCHMARKS)

bench-%: install
	$(PYTHON) benchmarks/bench_$*.py $(BENCH_ARGS_$*)

bench-export-executor: install
	$(PYTHON) benchmarks/bench_export.py --executor-only

bench-threads-arrival: install
	$(PYTHON) benchmarks/bench_threads.py --arrival --models default --repeats 2 --seconds 60

clean:
	rm -rf outputs multirun .pytest_cache .make
