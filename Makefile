# graphlake: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
LAKE   ?= ./lakehouse

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml training/distributed/build_horovod.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	bash training/distributed/build_horovod.sh $(PY)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

DEMO_EVENTS ?= 1000000

demo: install
	$(VENV)/bin/graphlake demo --lake $(LAKE) --events $(DEMO_EVENTS)

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install
	$(PY) bench/etl.py

clean:
	rm -rf $(LAKE) spark-warehouse metastore_db .pytest_cache
