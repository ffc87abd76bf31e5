# Two set-up commands, both creating .venv from the pinned requirements on first use:
#   make run    the default workflow (embedded synthetic data)
#   make test   the test suite (what .ci/run runs)
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
CORES ?= 4
ARGS ?=
# Test workers: one file per worker at a time (module fixtures are built once).
TEST_WORKERS ?= 2

.PHONY: run test venv lint

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/snakemake --cores $(CORES) $(ARGS)

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -rs -n $(TEST_WORKERS) --dist loadfile $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
