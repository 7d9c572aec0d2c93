# Every target sets itself up idempotently on a fresh Debian 12 machine (as root).
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/.venv/bin:$(PATH)

.PHONY: all setup tools demo test lint crds unit integration clean

all: test

# The operator (with its development tools) and, beside it, the sandbox distribution (sandbox/: the in-memory
# API server, the simulated fleet and the commands that need them), which the demo and the tests use.
# The runtime dependencies come first from operator/requirements.lock, hash-checked, exactly as the image gets
# them; the rest is installed with the lock (less its hashes) as constraints, so nothing moves a locked
# version (tests/chart/test_dockerfile.py checks the venv against the lock).
$(VENV_STAMP): pyproject.toml sandbox/pyproject.toml operator/requirements.lock
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r operator/requirements.lock
	sed -e '/--hash=/d' -e 's/ \\$$//' operator/requirements.lock > .venv/constraints.txt
	$(PY) -m pip install --quiet -c .venv/constraints.txt -e '.[dev]' -e './sandbox[testing]'
	touch $(VENV_STAMP)

tools:
	bash tools/install-tools.sh

setup: $(VENV_STAMP) tools

demo: setup
	$(PY) -m superpod.cli demo

lint: $(VENV_STAMP)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check operator sandbox tests e2e tools
	.venv/bin/mypy
	.venv/bin/lint-imports

crds: $(VENV_STAMP)
	$(PY) -m superpod.cli crds

# compileall: the tests start Python processes by the dozen (CLI commands, benchmarks, the demo), each compiling
# every module it imports where no bytecode was written (PYTHONDONTWRITEBYTECODE set): about 0.3 s of CPU each.
test: setup lint
	$(PY) -m superpod.cli crds --check
	$(PY) -m compileall -q operator/superpod sandbox/superpod_sandbox
	$(PY) -m pytest -q -p no:cacheprovider --durations=30

# docs/dashboard.png: a simulated fleet, its NPU-Exporters and a Prometheus are started, played and stopped
.PHONY: dashboard-png
dashboard-png: $(VENV_STAMP)
	$(PY) -m tests.monitoring.stage --png docs/dashboard.png

clean:
	rm -rf .venv .tools .mypy_cache .ruff_cache .pytest_cache
