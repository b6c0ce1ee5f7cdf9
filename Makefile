# graphlake: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
HASH   := $(shell cat pyproject.toml constraints.txt training/distributed/build_horovod.sh | sha1sum | cut -c1-12)
BASE   := $(VENV)/.base-$(HASH)
STAMP  := $(VENV)/.installed-$(HASH)
LAKE   ?= ./lakehouse

.PHONY: install install-base demo lint test cluster-test bench clean

# the versions the suite passed with (constraints.txt; docs/operations.md says how to upgrade them)
PIN    := -c constraints.txt

# what the pipeline needs (the demo: the core + pipeline, train and text extras): no test tools,
# no Airflow, no Horovod build
$(BASE): pyproject.toml constraints.txt training/distributed/build_horovod.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIN) -e '.[all]'
	@rm -f $(VENV)/.base-*
	@touch $(BASE)

# everything the tests exercise: test tools, the Airflow extra, Horovod (wheel cached in ~/.cache/graphlake)
$(STAMP): $(BASE)
	$(PY) -m pip install --quiet $(PIN) -e '.[test]'
	bash training/distributed/build_horovod.sh $(PY)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install-base: $(BASE)
install: $(STAMP)

DEMO_EVENTS ?= 1000000

demo: install-base
	$(VENV)/bin/graphlake demo --lake $(LAKE) --events $(DEMO_EVENTS)

# 3 pytest-xdist workers on 2 cores: much of a worker's time is waiting (JVM starts, subprocesses,
# Spark's scheduler, shared-fixture locks), so a third keeps the CPUs busy (a clean clone, idle
# machine: 2 workers 29.6 min; 3 workers 21.9 min, the CPUs ~89 % busy); --dist loadfile keeps a file's
# tests on one worker, in order, so a module's fixtures are built once (loadgroup does not group under
# pytest 9.2 + xdist 3.8: xdist renames node ids through an attribute pytest 9 no longer reads);
# TEST_WORKERS=0 runs them in this process
TEST_WORKERS ?= 3
# the 30 slowest setups/tests are listed at the end of every run: where the suite's time goes
PYTEST_ARGS ?= --durations=30

# ruff's rules are in pyproject.toml ([tool.ruff])
lint: install
	$(VENV)/bin/ruff check .

test: install lint
	$(PY) -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# the full cluster checks (graphlake.app.cluster: a standalone master + 2 workers on 127.0.0.1): a worker
# SIGKILLed during graph build, training through horovod.spark.run / TorchDistributor, a killed rank
cluster-test: install
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -m cluster_full tests/test_cluster_full.py $(PYTEST_ARGS)

bench: install
	$(PY) bench/etl.py

clean:
	rm -rf $(LAKE) spark-warehouse metastore_db .pytest_cache
