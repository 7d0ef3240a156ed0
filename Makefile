# Two commands on a fresh machine:
#   make demo   -> installs wsagg into .venv and aggregates the embedded dataset
#   make test   -> installs the dev tools (CPU torch, cvxpy, pytest, hypothesis, ruff) and runs
#                  ruff, the strict docs build and the whole test suite
# The quick loop while editing:  make test-fast  (ruff + the tests not marked `slow`)
# The docs site:                 make docs       (-> build/site/index.html, works from disk)
# Override the torch build, e.g. for CUDA:  make test TORCH_SPEC="torch==2.13.0" PIP_EXTRA="--index-url ..."
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PIP_EXTRA ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-fast lint docs clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install --quiet "$(TORCH_SPEC)" $(PIP_EXTRA)
	$(PIP) install --quiet -e ".[dev]"
	touch $@

demo: $(VENV)/.core
	$(VENV)/bin/wsagg demo

test: $(VENV)/.dev
	$(VENV)/bin/ruff check wsagg tests benchmarks
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(PY) -m pytest

test-fast: $(VENV)/.dev
	$(VENV)/bin/ruff check wsagg tests benchmarks
	$(PY) -m pytest -m "not slow" -q

docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check wsagg tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
