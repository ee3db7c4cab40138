# acar_d2: the two commands a newcomer needs are `make quickstart` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
D2_WHEEL := sal-detectron2==0.7.2
# Set D2_SOURCE=/path/to/detectron2 (a checkout of upstream detectron2) to build it from source instead
# of installing the sal-detectron2 wheel, e.g. `make setup D2_SOURCE=$$HOME/src/detectron2`.
D2_SOURCE ?=
STAMP := $(VENV)/.acar_d2_setup_done
PYTEST_ARGS ?= -q -x

.PHONY: setup test quickstart clean-venv benchmarks

setup: $(STAMP)

$(STAMP): requirements.txt setup.py Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade "pip<27"
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -r requirements.txt $(TORCH_PINS)
ifeq ($(strip $(D2_SOURCE)),)
	@if ! $(PIP) show sal-detectron2 >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d) && \
	  $(PIP) download -q --no-deps --only-binary=:all: --python-version 3.10 $(D2_WHEEL) -d $$tmp && \
	  $(PY) -m installer $$tmp/*.whl && rm -rf $$tmp; fi
else
	$(PIP) install -q --no-build-isolation -e $(D2_SOURCE)
endif
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import acar_d2, detectron2; print('acar_d2 ready; detectron2', detectron2.__version__)"
	@touch $(STAMP)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS) tests

quickstart: setup
	$(PY) tools/quickstart.py --output output/quickstart

benchmarks: setup
	$(PY) tools/benchmarks/benchmark_backbone.py
	$(PY) tools/benchmarks/benchmark_heads.py
	$(PY) tools/benchmarks/benchmark_data.py
	$(PY) tools/benchmarks/benchmark_eval.py

clean-venv:
	rm -rf $(VENV)
