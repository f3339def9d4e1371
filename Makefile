# actlab: `make demo` runs the default study and writes the report; `make test` runs the tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.actlab-installed
OUT    ?= out

.PHONY: install demo test test-all lint bench browser data clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of PyTorch, pinned: an unpinned `torch` would pull several GB of CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install data
	$(VENV)/bin/actlab study --db $(OUT)/study.sqlite --report $(OUT)/report.html

# Real Fashion-MNIST for the default study (Debian package; said in one line if it cannot be installed)
data:
	@test -d /usr/share/datasets/fashion-mnist || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
	    && echo "installed dataset-fashion-mnist" || echo "dataset-fashion-mnist could not be installed: the default study needs Fashion-MNIST (see the README's Evidence section)"; }

# Chromium for the report's browser test (Debian package; skipped if it cannot be installed)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	    && echo "installed chromium" || echo "chromium could not be installed: the browser test will be skipped"; }

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

test: install browser data lint
	$(PY) -m pytest -q

test-all: install browser data lint
	$(PY) -m pytest -q -m ""

bench: install
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/training.py

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
