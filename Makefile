# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_CORE := $(VENV)/.installed-demo
STAMP_ALL := $(VENV)/.installed-all
# runcrate pins cwl-utils and networkx exactly, to versions current cwltool excludes: installed without its
# dependencies (the `provenance` extra brings the ones it needs); tests/cwl/test_provenance.py runs it.
RUNCRATE := runcrate>=0.6.2,<0.7

.PHONY: demo test lint typecheck unit bench profile conformance clean install install-all

$(PY):
	@echo "== creating the virtual environment $(VENV) and upgrading pip (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_CORE): pyproject.toml | $(PY)
	@echo "== installing oscar-plugins with cwltool, numpy and matplotlib into $(VENV) (about a minute the first time)"
	$(PY) -m pip install --quiet -e '.[cwl,examples]'
	touch $@

$(STAMP_ALL): pyproject.toml | $(PY)
	@echo "== installing oscar-plugins with every extra (cwltool, Airflow 3, itwinai) and the test tools into" \
	  "$(VENV) (about 4 minutes and 7 GB the first time)"
	$(PY) -m pip install --quiet -e '.[all,dev]'
	@echo "== runcrate (oscar-cwl --ro-crate), without its exact cwl-utils/networkx pins that cwltool excludes"
	$(PY) -m pip install --quiet --no-deps '$(RUNCRATE)'
	touch $@ $(STAMP_CORE)

install: $(STAMP_CORE)
install-all: $(STAMP_ALL)

## demo: the DT-Flood use case (CWL, model step offloaded) on the embedded local cluster
demo: $(STAMP_CORE)
	$(PY) examples/flood/run_demo.py

## test: lint, type-check and run the whole test suite
test: $(STAMP_ALL) lint typecheck unit

lint: $(STAMP_ALL)
	$(VENV)/bin/ruff check $(wildcard oscar_plugins cwl airflow_provider itwinai_ext tests examples benchmarks)
typecheck: $(STAMP_ALL)
	$(VENV)/bin/mypy
# The whole suite against the newest OSCAR persona; the client's component tests against every older one;
# the end-to-end suites with jobs run by the real faas-supervisor (../shared; skipped with a reason without it).
PERSONAS := 4.0 3.7 3.6
E2E := tests/core/test_wrapper.py tests/core/test_client_local.py tests/cwl/test_e2e.py tests/airflow \
	tests/itwinai/test_pipelines_local.py tests/itwinai/test_3dgan_usecase.py tests/examples
unit: $(STAMP_ALL)
	$(VENV)/bin/pytest
	@for v in $(PERSONAS); do \
	  echo "== the client's component tests against the local cluster as OSCAR $$v"; \
	  OSCAR_PLUGINS_LOCAL_VERSION=$$v $(VENV)/bin/pytest -q -p no:cacheprovider tests/core || exit 1; \
	done
	@echo "== end-to-end tests with jobs run by the real faas-supervisor"
	OSCAR_PLUGINS_LOCAL_EXECUTION=supervisor $(VENV)/bin/pytest -q -p no:cacheprovider $(E2E)

## conformance: CWL v1.2 conformance suite through oscar-cwl, every CommandLineTool on the local cluster
##   (CONFORMANCE_ARGS="--tags required" for the required subset; see tests/cwl/conformance.py --help)
conformance: $(STAMP_CORE)
	@$(VENV)/bin/cwltest --version >/dev/null 2>&1 || $(PY) -m pip install --quiet -e '.[cwl]'
	$(PY) tests/cwl/conformance.py $(CONFORMANCE_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache

## bench: the performance figures (prints a table, writes docs/PERFORMANCE.md)
bench: $(STAMP_ALL)
	$(PY) -m benchmarks.bench $(BENCH_ARGS)

## profile: where the CPU goes (client, cluster API, S3 server, job scripts) for 300 short jobs and a
##   200-branch CWL scatter, sampled with py-spy; writes the tables into docs/PERFORMANCE.md
profile: $(STAMP_ALL)
	$(PY) -m benchmarks.profile --scenario dispatch --jobs 300 --py-spy --write
	$(PY) -m benchmarks.profile --scenario cwl --jobs 200 --py-spy --write
