# numbex: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONFIG ?= config/default.toml
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache

.PHONY: run test bench stress setup clean

# QuickFIX (the independent FIX engine of the interop tests) compiles from source in
# about 4 minutes; its wheel is built once and kept in WHEELS.
WHEELS   ?= $(HOME)/.cache/numbex/wheels
QUICKFIX := quickfix==1.16.0

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

$(VENV)/.interop: $(STAMP)
	mkdir -p $(WHEELS)
	$(PY) -m pip install -q --no-index --find-links $(WHEELS) '$(QUICKFIX)' 2>/dev/null || \
	  ( echo "building the QuickFIX wheel once (a few minutes)"; \
	    $(PY) -m pip wheel -q --no-deps '$(QUICKFIX)' -w $(WHEELS) && \
	    $(PY) -m pip install -q --no-index --find-links $(WHEELS) '$(QUICKFIX)' )
	touch $@

setup: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/numbex serve --config $(CONFIG)

test: $(STAMP) $(VENV)/.interop
	$(PY) -m pytest -q -p no:cacheprovider tests

bench: $(STAMP)
	$(VENV)/bin/numbex bench all

stress: $(STAMP) $(VENV)/.interop
	NUMBEX_STRESS=1 $(PY) -m pytest -q -p no:cacheprovider tests/stress tests/integration/test_engine_crash.py

clean:
	rm -rf $(VENV) .numba_cache build *.egg-info var
