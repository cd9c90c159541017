# kdsd: the two set-up commands of the README.
#   make reproduce   create .venv, install, run the default experiment, build the HTML report
#   make test        create .venv, install, start a local one-node SLURM cluster where possible
#                    (root; workflow/scripts/local-slurm.sh), run the test suite (unit tests,
#                    smoke DAG locally and through SLURM; the SLURM tests say why when skipped)
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 8
export PATH := $(BIN):$(PATH)

.PHONY: install reproduce report test test-fast dag-smoke slurm-up bench clean-results

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
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

clean-results:
	rm -rf results/corpus results/models results/scores results/tables results/plots \
	       results/logs results/benchmarks results/summary.md results/report.html
