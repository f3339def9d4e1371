# actlab: `make demo` runs the default study and writes the report; `make test` runs the tests.
# Both install the exact versions of requirements.lock into .venv; `make lock` refreshes it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
LOCK   := requirements.lock
STAMP  := $(VENV)/.actlab-installed
OUT    ?= out
PIP_TOOLS := pip-tools==7.6.2

.PHONY: install system demo test test-all lint bench lock clean

# The locked versions (pip first, then everything, then actlab itself without resolving again)
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q "$$(grep -m1 '^pip==' $(LOCK))"
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

# Debian packages: Chromium (the report's browser test) and the real Fashion-MNIST
# (/usr/share/datasets/fashion-mnist/). Skipped, with one line, where apt-get cannot install.
system:
	@missing=""; \
	  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="chromium"; \
	  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing="$$missing dataset-fashion-mnist"; \
	  if [ -n "$$missing" ]; then \
	    if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null 2>&1; \
	    then echo "installed$$missing with apt-get"; \
	    else echo "could not install$$missing with apt-get: the browser test is skipped and Fashion-MNIST needs --data-dir"; fi; \
	  fi

demo: install system
	@mkdir -p $(OUT)
	$(VENV)/bin/actlab study --report $(OUT)/report.html

lint: install
	$(VENV)/bin/ruff check src tests benchmarks examples

test: install system lint
	$(PY) -m pytest -q

test-all: install system lint
	$(PY) -m pytest -q -m ""

bench: install
	$(PY) benchmarks/kernels.py
	$(PY) benchmarks/training.py

# Re-resolve every version from pyproject.toml's ranges and requirements.in (pip-tools, in a
# throwaway venv), then reinstall .venv from the new lock.
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q $(PIP_TOOLS)
	.venv-lock/bin/pip-compile --quiet --upgrade --extra dev --allow-unsafe --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file $(LOCK) pyproject.toml requirements.in
	rm -rf .venv-lock $(STAMP)
	@echo "wrote $(LOCK); run make test to install and test it"

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .ruff_cache
