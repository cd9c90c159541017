# kdsd: the two set-up commands of the README.
#   make reproduce   create .venv, install, run the default experiment, build the HTML report
#   make test        create .venv, install, start a local one-node SLURM cluster where possible
#                    (root; workflow/scripts/local-slurm.sh), run the test suite (unit tests,
#                    smoke DAG locally and through SLURM; the SLURM tests say why when skipped)
#   make lock        re-resolve requirements.lock (the whole tree, hashed) from pyproject.toml's pins,
#                    and write environment.yml from it
#   make readme-results NOTE='machine, command, wall time'   snapshot a finished run's tables into
#                    docs/results/default and rewrite the README's results block from them
#   make cli-docs    write docs/cli.md from the parser (tests/test_docs.py checks both)
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 8
# The lock: every package of the tree at one version, with its hashes, for Linux x86_64 and
# Python 3.11 (make lock writes it with uv, installed here from PyPI at a pinned version).
LOCK := requirements.lock
LOCK_PYTHON := 3.11
LOCK_PLATFORM := x86_64-manylinux_2_28
UV_VERSION := 0.13.9
UV_DIR := .uv
export PATH := $(BIN):$(PATH)

.PHONY: install lock reproduce report test test-fast dag-smoke slurm-up bench clean-results \
        readme-results cli-docs

install: $(STAMP)

# The locked tree, every file checked against its hash; then kdsd itself, without resolving its
# dependencies again and built with the lock's setuptools (no isolated build environment);
# pip check fails where pyproject.toml's pins and the lock disagree (run make lock).
$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

reproduce: $(STAMP)
	snakemake --cores $(CORES)
	$(MAKE) report

report: $(STAMP)
	snakemake --cores $(CORES) --report results/report.html

test: $(STAMP) slurm-up
	$(BIN)/python -m pytest -v -rs --durations=15

# Not fatal here: without root or apt the SLURM tests are skipped with the reason (.ci/run,
# where a cluster is required, calls the script directly and fails if it cannot start one).
slurm-up:
	@workflow/scripts/local-slurm.sh start || echo "make: no local SLURM cluster; the SLURM tests will be skipped"

bench: $(STAMP)
	kdsd bench

test-fast: $(STAMP)
	$(BIN)/python -m pytest -v -m "not dag"

dag-smoke: $(STAMP)
	snakemake --cores 2 --configfile workflow/presets/smoke.yaml

# The run the README quotes (docs/reproducibility.md): RESULTS is a finished run's folder, NOTE
# names its machine, command and wall time (the snapshot's README records it with date and commit).
RESULTS ?= results
readme-results: $(STAMP)
	kdsd readme-results $(RESULTS) --snapshot docs/results/default --readme README.md --note "$(NOTE)"

cli-docs: $(STAMP)
	kdsd cli-docs --out docs/cli.md

clean-results:
	rm -rf results/corpus results/models results/scores results/tables results/plots \
	       results/logs results/benchmarks results/summary.md results/report.html

# Keeps the lock's versions where pyproject.toml still allows them; LOCK_FLAGS=--upgrade moves every
# transitive package to its newest release that fits the pins.
lock:
	test -x $(UV_DIR)/bin/uv || $(PYTHON) -m pip install --quiet --disable-pip-version-check \
	    --target $(UV_DIR) uv==$(UV_VERSION)
	$(UV_DIR)/bin/uv pip compile --quiet pyproject.toml --extra test --constraint lock-constraints.txt \
	    --generate-hashes --python-version $(LOCK_PYTHON) --python-platform $(LOCK_PLATFORM) \
	    $(LOCK_FLAGS) --output-file $(LOCK)
	$(PYTHON) tools/environment_from_lock.py $(LOCK_PYTHON)
