# vgpu: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5930

.PHONY: setup demo test test-fast lint bench clean

# System packages, the virtual environment and the C extensions.
setup: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard csrc/*.h csrc/*.c csrc/*.py)
	bash scripts/install-system-deps.sh
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The main job: the built-in desktop guest served to SPICE clients.
demo: setup
	$(BIN)/vgpu serve --demo desktop --port $(PORT)

# The whole suite, slow tier included (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

# The quick loop while developing.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check vgpu tests bench csrc examples

bench: setup
	$(BIN)/vgpu bench all

clean:
	rm -rf build *.egg-info vgpu/_*.so vgpu/_*.c
