# The two commands of the README: `make run` (quick-start production) and `make test`.
# Each sets up .venv on first use (only Python >= 3.11 and make are needed).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.km3sim-installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "km3sim needs Python >= 3.11, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/km3sim run productions/quickstart.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_quickstart.py

clean:
	rm -rf output .pytest_cache
