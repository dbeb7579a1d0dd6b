# Every target runs in the cached environment that scripts/bootstrap.py builds from pyproject.toml and
# requirements.lock.
PYTHON := $(shell python3 scripts/bootstrap.py)
export PYTHONPATH := $(CURDIR)
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-fast lint format bench bench-all bench-gpu env lock

env:
	@echo $(PYTHON)

lock:  # re-resolve pyproject's ranges to the newest releases and rewrite requirements.lock
	$(PYTHON) scripts/bootstrap.py --lock

demo:  # make demo DEMO_ARGS=--keep-serving keeps the server and its web page up until Ctrl-C
	$(PYTHON) -m cli demo $(DEMO_ARGS)

test:
	$(PYTHON) -m pytest -q

test-fast:
	$(PYTHON) -m pytest -q -m "not slow and not integration"

lint:  # ruff, then the import contract in pyproject.toml ([tool.importlinter])
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check . && $(dir $(PYTHON))lint-imports --no-cache

format:
	$(PYTHON) -m ruff check --fix . && $(PYTHON) -m ruff format .

bench:
	$(PYTHON) bench/core.py

bench-all: bench  # about 40 minutes on 2 cores
	$(PYTHON) bench/zoo_build.py
	$(PYTHON) bench/quality.py
	$(PYTHON) bench/composition.py

bench-gpu:  # on a CUDA machine: the GPU tests, then the distributed GPU target
	$(PYTHON) -m pytest -q -m gpu tests
	$(PYTHON) bench/distributed_gpu.py
