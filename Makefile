# Two commands do everything on a fresh machine: `make run` and `make test`.
# Exact versions of every Python package: requirements.txt (envs/*.yaml follow it; a test checks).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config/config.yaml
CORES  ?= all

.PHONY: setup run test test-all lint fmt docs synthetic validate bench bench-workflow bench-exporters holdout coverage federated-demo clean help

help:
	@echo "make run    - set up .venv and run the workflow on the bundled cohort, with HTML report"
	@echo "make test   - set up .venv and run the test suite without the slow end-to-end runs"
	@echo "make test-all - the whole test suite, slow runs included (what CI runs)"
	@echo "make lint   - ruff check, snakemake --lint and snakefmt --check"
	@echo "make docs   - regenerate the README's config table and the rule graph (needs graphviz)"
	@echo "make synthetic - regenerate resources/synthetic (deterministic)"
	@echo "make validate - run on the synthetic cohort and score recovery of the planted truth"
	@echo "make bench  - stock mofapy2 vs the fast MOFA+ engine (about 25 min; not part of test)"
	@echo "make bench-exporters - featureCounts, MaxQuant, GEO, MAF and Olink files at real size against plain tables (about 9 min)"
	@echo "make bench-workflow - the whole workflow at N = 200, 1,000, 5,000 x 10,000 features (hours; BENCH_WORKFLOW_ARGS=\"--sizes 1000\": ~7 min)"
	@echo "make holdout - discover on 2/3 of the bundled cohort, score the held-back third"
	@echo "make coverage - how often the nested-CV 95% interval covers held-out AUC (50 replicates)"
	@echo "make federated-demo - ACC as three sites fitting one MOFA+ model over Flower, checked against the pooled fit"

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/snakemake --cores $(CORES) --configfile $(CONFIG)
	$(BIN)/snakemake --cores 1 --configfile $(CONFIG) --report \
		results/$$($(BIN)/python -c "import yaml,sys; print(yaml.safe_load(open('$(CONFIG)'))['cohort'])")/report.html
	@echo ""
	@PYTHONPATH=workflow/scripts $(BIN)/python -m omix.summary results/$$($(BIN)/python -c \
		"import yaml; print(yaml.safe_load(open('$(CONFIG)'))['cohort'])")

# make test: everything but the slow end-to-end runs (under 8 min on 2 cores);
# make test-all: the whole suite, what CI (.ci/run) runs
test: setup
	$(BIN)/python -m pytest -m "not slow"

test-all: setup
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check workflow/scripts tests
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

# the README's configuration table from the schema, the rule graph from the Snakefile
docs: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.config README.md
	$(BIN)/snakemake --rulegraph --configfile $(CONFIG) | dot -Tsvg > workflow/report/rulegraph.svg

fmt: setup
	$(BIN)/snakefmt Snakefile workflow/rules

synthetic: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.synthetic resources/synthetic

validate: setup
	$(BIN)/snakemake --cores $(CORES) --configfile config/synthetic.yaml
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.validate results/synthetic \
		resources/synthetic/truth

# BENCH_ARGS="--sizes 200 --big 0" for a quick look; see python -m omix.bench --help
bench: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.bench $(BENCH_ARGS)

# ingest of featureCounts, MaxQuant, GEO, MAF and Olink files against plain tables (about 9 min)
bench-exporters: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.exporter_bench $(BENCH_EXPORTERS_ARGS)

# per-rule wall time, peak RSS and CPU on synthetic scale cohorts; python -m omix.workflow_bench -h
bench-workflow: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.workflow_bench $(BENCH_WORKFLOW_ARGS)

holdout: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.holdout $(CONFIG)
	$(BIN)/snakemake --cores $(CORES) --configfile results/holdout/$$($(BIN)/python -c \
		"import yaml; print(yaml.safe_load(open('$(CONFIG)'))['cohort'])")/config.yaml
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.holdout $(CONFIG) --compare

clean:
	rm -rf results logs benchmarks .snakemake

# Empirical coverage of the nested-CV interval (about 5 min; not part of test)
coverage: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.coverage $(COVERAGE_ARGS)

federated-demo: setup
	PYTHONPATH=workflow/scripts $(BIN)/python -m omix.flower demo $(FEDERATED_ARGS)
