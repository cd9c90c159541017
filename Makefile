# kdsd: the two set-up commands of the README.
#   make reproduce   create .venv, install, run the default experiment, build the HTML report
#   make test        create .venv, install, run the test suite (unit tests + smoke DAG)
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= 8
export PATH := $(BIN):$(PATH)

.PHONY: install reproduce report test test-fast dag-smoke clean-results

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

test: $(STAMP)
	$(BIN)/python -m pytest -v --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -v -m "not dag"

dag-smoke: $(STAMP)
	snakemake --cores 2 --configfile workflow/presets/smoke.yaml

clean-results:
	rm -rf results/corpus results/models results/scores results/tables results/plots \
	       results/logs results/benchmarks results/summary.md results/report.html
