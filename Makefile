# numbex: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= config/default.toml
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: run test bench stress setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/numbex serve --config $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(VENV)/bin/numbex bench all

stress: $(STAMP)
	NUMBEX_STRESS=1 $(PY) -m pytest -q -p no:cacheprovider tests/stress

clean:
	rm -rf $(VENV) .numba_cache build *.egg-info var
