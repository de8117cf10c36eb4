# Two commands for a newcomer (see README):
#   make demo   installs into .venv and runs the main job on its embedded defaults
#   make test   installs the test extras into .venv, lints, type-checks, and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck bench clean label-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/ultravqa-ray demo

# lint, type check and the labelling tools' install are independent: they run side by side.
test: $(VENV)/.installed-test
	$(MAKE) --no-print-directory -j3 lint typecheck label-tools
	$(BIN)/python -m pytest

# The labelling tests need Label Studio (its own cached venv: ~/.cache/ultravqa-ray/label-studio-<version>)
# and, for the browser test, Debian's chromium + chromium-driver. Both steps do nothing when already done.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
label-tools: $(VENV)/.installed-test
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; }
	@$(BIN)/ultravqa-ray label install >/dev/null

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
