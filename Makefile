# Set-up in two commands (README "Install"):
#
#   make render   install what a render needs and render storyboards/ep01.yaml on the preview engine
#   make test     install the test extras too and run the test suite (what .ci/run calls)
#
# Both install into the active virtual environment, or into ./.venv (created on first use) when
# none is active. A step runs again only when pyproject.toml changes. The same steps by hand, for
# environments you manage yourself, are in README "Install".
#
# Variables: STORYBOARD=ep02 (what `make render` renders), ARGS='dry_run=true engine=svd'
# (more overrides), PYTEST_ARGS='-n 2 -m "not slow"', PYTHON=python3.11 (creates .venv), VENV=path.

PYTHON ?= python3
VENV ?= .venv
STORYBOARD ?= ep01
ARGS ?=
# Two workers (pytest-xdist): the suite takes ~7 min instead of ~11 on 2 cores. PYTEST_ARGS=
# '-n 0' runs it in one process (what `python -m pytest` does).
PYTEST_ARGS ?= -n 2
# 2.13.0 is the CPU wheel here; a machine with the CUDA build of torch 2.13 already installed
# keeps it (pip sees 2.13.0+cu128 (any CUDA build) as satisfying ==2.13.0).
TORCH ?= torch==2.13.0

ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := $(VENV)
endif
PY := $(ENV_DIR)/bin/python

.PHONY: install install-dev render test clean-install

$(ENV_DIR)/bin/python:
	$(PYTHON) -m venv $(ENV_DIR)
	$(PY) -m pip install --upgrade pip

# Stamps in the environment: `make render` twice installs once.
$(ENV_DIR)/.reelforge-installed: pyproject.toml | $(ENV_DIR)/bin/python
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e .
	touch $@

$(ENV_DIR)/.reelforge-dev-installed: pyproject.toml | $(ENV_DIR)/bin/python
	$(PY) -m pip install "$(TORCH)"
	$(PY) -m pip install -e ".[dev]"
	touch $@ $(ENV_DIR)/.reelforge-installed

install: $(ENV_DIR)/.reelforge-installed

install-dev: $(ENV_DIR)/.reelforge-dev-installed

render: install
	$(PY) -m flows.render storyboard=$(STORYBOARD) $(ARGS)

test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

# Forget the stamps, so the next make reinstalls.
clean-install:
	rm -f $(ENV_DIR)/.reelforge-installed $(ENV_DIR)/.reelforge-dev-installed
