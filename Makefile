# Two commands do everything on a fresh machine: `make demo` and `make test` (both run the set-up first).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# brownie 1.22 warns about its own internal calls on every chain.sleep/snapshot.
export PYTHONWARNINGS := ignore::FutureWarning
PYTEST_FLAGS ?= -q

.PHONY: setup demo demo-contracts test lint contracts clean bench bench-quick

setup:
	@bash toolchain/setup.sh

contracts: setup
	brownie compile --all

lint: contracts
	ruff check node tests scripts toolchain bench
	ruff format --check node tests scripts toolchain bench
	mypy
	python toolchain/export_artifact.py --check
	python toolchain/slither_gate.py

demo: setup
	cotrain demo --summary reports/demo.json

# The market alone: one scripted task through the contracts with brownie, no training.
demo-contracts: setup
	brownie run scripts/demo_task.py

# tests/node runs in parallel: its tests start their own anvils and daemons on free ports and mostly wait on
# blocks and subprocesses (4 workers: 16 min on 2 cores, against 32 serially).
# OMP_NUM_THREADS=1: each worker's torch would otherwise start a thread per core, and 4 workers' threads on 2 cores
# fight each other (tests/node 19.1 -> 16.5 min; test_federated's four_iid case 132 s -> 23 s).
# tests/contracts run in parallel too: brownie's xdist support gives worker gwN its own anvil on port 8545+N and
# hands out whole test files (its module-scoped deployments stay in one process); the workers load the build
# that `contracts` wrote first (while one compiles, the others find files missing). The stateful tests replay
# thousands of transactions from snapshots and get anvils of their own in a separate run, so nothing they leave
# in a node's transaction pool meets another test; their three files run side by side.
# (pytest-xdist comes with eth-brownie.)
TEST_WORKERS ?= 4
CONTRACT_WORKERS ?= 3
test: lint
	OMP_NUM_THREADS=1 python -m pytest tests/node -p no:pytest-brownie -n $(TEST_WORKERS) $(PYTEST_FLAGS)
	python -m pytest tests --ignore=tests/node --ignore-glob='tests/contracts/test_stateful*.py' -n $(CONTRACT_WORKERS) $(PYTEST_FLAGS)
	python -m pytest tests/contracts/test_stateful*.py -n 3 $(PYTEST_FLAGS)

# Benchmarks, not part of `make test`: results in bench/results/ (quick: bench/results/quick/), read in
# BENCHMARKS.md. bench-quick runs reduced versions of every section in a few minutes.
bench: setup
	python -m bench.run

bench-quick: setup
	python -m bench.run --quick

clean:
	rm -rf build reports .hypothesis .pytest_cache .cotrain/demo
