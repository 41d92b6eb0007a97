# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use (torch 2.13.0 first,
# pinned: an unpinned torch pulls a multi-GB CUDA build) and reuse it afterwards; the venv is rebuilt only when
# pyproject.toml changes.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	GUARD_HOME=$(CURDIR)/.guard-demo $(BIN)/guard demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .guard-demo .pytest_cache
